// The server's clock as seen from here: offset = server_time - the local time halfway through
// the round trip, from the fastest of a few time:sync calls. Every device counts a rest timer
// down to the same server `ends_at`, so with their offsets they agree to a few milliseconds.

let offset = 0;

export const serverNow = () => Date.now() + offset;

export async function sync(call, samples = 3) {
  let best = Infinity;
  for (let i = 0; i < samples; i++) {
    const sent = Date.now();
    const reply = await call("time:sync", {});
    const back = Date.now();
    if (reply.ok && back - sent < best) {
      best = back - sent;
      offset = reply.data.server_time - (sent + back) / 2;
    }
  }
}

/** Seconds as m:ss. */
export function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
