// Two devices of one user on the official socket.io-client 4.x, as the apps use it.
// Usage: node official_client.mjs URL TOKEN TRANSPORTS   (TRANSPORTS: "websocket" or "polling,websocket")
// Prints one JSON object: what each step answered, or the error.
import { io } from "socket.io-client";

const [url, token, transports] = process.argv.slice(2);
const device = (id) =>
  io(url, { auth: { token, device_id: id }, transports: transports.split(","), reconnection: false, timeout: 5000 });
const ready = (socket) =>
  new Promise((resolve, reject) => {
    socket.once("session:ready", resolve);
    socket.once("connect_error", (err) => reject(Object.assign(new Error(err.message), { data: err.data })));
  });

const out = {};
const phone = device("phone");
const watch = device("watch");
try {
  out.ready = await Promise.all([ready(phone), ready(watch)]);
  if (phone.io.engine.transport.name !== "websocket") {
    await new Promise((resolve) => phone.io.engine.once("upgrade", resolve));
  }
  out.transport = phone.io.engine.transport.name;
  const watchSaw = new Promise((resolve) => watch.on("set:completed", resolve));
  const workoutId = crypto.randomUUID();
  out.started = await phone.timeout(5000).emitWithAck("workout:start", { workout_id: workoutId, name: "Push" });
  out.set = await phone.timeout(5000).emitWithAck("set:complete", {
    workout_id: workoutId, set_id: crypto.randomUUID(), exercise_id: "bench", weight_kg: 80, reps: 5,
  });
  out.watch_saw = await watchSaw;
  out.unknown = await phone.timeout(5000).emitWithAck("no:such", {});
} catch (err) {
  out.error = err.message;
  out.error_data = err.data ?? null;
}
phone.close();
watch.close();
console.log(JSON.stringify(out));
