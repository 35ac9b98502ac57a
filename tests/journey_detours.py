"""The journeys' rules off the main path (tests/test_journeys.py): events for a workout that is not the
caller's, devices dropping and returning, looking back with workout:sync, group rooms, deletes from history."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from .clients import check
from .journey_machine import PICK, JourneyMachine
from .journey_model import (
    Room,
    has_nul,
)
from .journey_phone import Phone, new_id


class Detours(JourneyMachine):
    @rule(pick=PICK, which=PICK, whose=st.sampled_from(["ended", "another user's", "unknown"]), op=st.sampled_from(
        ["set:complete", "set:update", "workout:pause", "rest:start", "workout:complete", "workout:discard",
         "workout:sync"]))
    def misdirected(self, pick: int, which: int, whose: str, op: str) -> None:
        """An event for an ended workout is a conflict naming its status (repeating its end repeats the ack);
        another user's workout, live or ended, and an id never used are not_found for every event."""
        user = self.user(pick)
        if whose == "ended":
            found = [w for w in self.workouts[user] if w.end_ack]
        else:
            found = [w for u in self.users if u != user for w in self.workouts[u]]
        w = found[which % len(found)] if found and whose != "unknown" else None
        payload: dict[str, Any] = {"workout_id": w.wid if w else new_id()}
        if op == "set:complete":
            payload.update(set_id=new_id(), exercise_id="bench", reps=5)
        elif op == "set:update":
            payload.update(set_id=next(iter(w.sets), new_id()) if w else new_id(), notes=f"late {new_id()}")
        elif op == "rest:start":
            payload["duration_s"] = 60
        elif op == "workout:sync":
            payload["since_seq"] = 0
        elif op == "workout:complete" and w and w.notes is not None:
            payload["notes"] = w.notes
        ph = self.phone(user, pick)
        if w is None or w.user != user:
            self.call(ph, op, payload, "not_found")
            if w:
                assert self.rest_get(user, f"/api/v1/workouts/{w.wid}").status_code == 404
        elif op == "workout:sync":
            # an ended workout syncs for ENDED_WORKOUT_KEEP_S: longer than a run
            assert self.sync(ph, w, 0, learn=False)[-1][1] == w.end_ack
        elif (op, w.status) in (("workout:complete", "completed"), ("workout:discard", "discarded")):
            assert self.call(ph, op, payload) == w.end_ack
        elif op == "set:update" and not w.sets:
            self.call(ph, op, payload, "not_found")
        else:
            assert self.call(ph, op, payload, "conflict")["details"] == {"status": w.status}

    # ---- devices come and go ---------------------------------------------------------------------

    @rule(pick=PICK, which=PICK, server=st.integers(0, 1))
    def drop_or_return(self, pick: int, which: int, server: int) -> None:
        """A device disconnects (one stays online to act), or comes back on either process: session:ready
        has the live workout as the model has it, and workout:sync from the last seq the device applied
        fills in everything it missed."""
        user = self.user(pick)
        ph = self.phones[user][which % 2]
        if ph.dev and all(other.dev for other in self.phones[user]):
            ph.absorb()
            self.run(ph.dev.close())
            ph.dev = None
            for room in self.rooms:
                room.present.discard((user, ph.name))
        elif not ph.dev:
            ready = self.run(ph.connect(self.env.urls[server]))
            check("session:ready", ready)
            live = self.live[user]
            if live is None:
                assert ready["active_workout"] is None, ready
            else:
                live.check_snapshot(ready["active_workout"], self.bases(user))
            self.catch_up(ph)

    @rule(pick=PICK, which=PICK, back=st.integers(0, 4))
    def look(self, pick: int, which: int, back: int) -> None:
        """GET /workouts/active is the live workout as the model has it, and workout:sync from a seq the
        device has replays the events after it, each as the device got it."""
        user = self.user(pick)
        response = self.rest_get(user, "/api/v1/workouts/active")
        if self.live[user] is None:
            assert response.status_code == 404 and response.json()["code"] == "not_found", response.text
        else:
            assert response.status_code == 200, response.text
            self.live[user].check_snapshot(response.json(), self.bases(user))
        if self.workouts[user]:
            w = self.workouts[user][which % len(self.workouts[user])]
            ph = self.phone(user, pick)
            ph.absorb()
            have = ph.applied(w.wid)
            assert have == len(ph.known.get(w.wid, {})) >= w.top, (ph.name, sorted(ph.known.get(w.wid, {})), w.top)
            assert len(self.sync(ph, w, max(0, have - back))) >= min(back, have)

    # ---- group rooms ------------------------------------------------------------------------------

    @rule(pick=PICK, which=PICK, op=st.sampled_from(
        ["create", "join by code", "join by id", "wrong code", "leave", "rotate invite"]),
          name=st.sampled_from(["Tuesday crew", "Tuesday crew", "nul\x00room"]))
    def in_rooms(self, pick: int, which: int, op: str, name: str) -> None:
        """room:create / room:join (by code, or by id for members) / room:leave / room:rotate_invite (owner
        only); the user's own presence entry names their live workout started in the room; a wrong invite
        code is not_found, and after 10 of them rate_limited."""
        user = self.user(pick)
        ph = self.phone(user, pick)
        room = self.rooms[which % len(self.rooms)] if self.rooms else None
        if op == "create" or room is None:
            data = self.call(ph, "room:create", {"name": name}, "invalid_payload" if has_nul(name) else None)
            if has_nul(name):
                return
            assert data["room"]["name"] == name and data["room"]["owner_id"] == user, data
            room = Room(data["room"]["room_id"], data["room"]["invite_code"], user)
            self.rooms.append(room)
        elif op == "leave":
            data = self.call(ph, "room:leave", {"room_id": room.room_id}, None if user in room.members else "not_found")
            if user in room.members:
                assert data == {"room_id": room.room_id}
                room.members.discard(user)
                room.present = {(u, n) for u, n in room.present if u != user}
                live = self.live[user]
                if live is not None and live.room_id == room.room_id:
                    live.left_room = True
            return
        elif op == "rotate invite":  # a new code, and the old one stops working
            want = "not_found" if user not in room.members else None if user == room.owner else "forbidden"
            data = self.call(ph, "room:rotate_invite", {"room_id": room.room_id}, want)
            if want is None:
                assert data["room"]["invite_code"] != room.code and data["room"]["room_id"] == room.room_id, data
                self.wrong_codes[user] += 1
                self.call(ph, "room:join", {"invite_code": room.code},
                          "rate_limited" if self.wrong_codes[user] > 10 else "not_found")
                room.code = data["room"]["invite_code"]
            return
        elif op == "wrong code":
            self.wrong_codes[user] += 1
            self.call(ph, "room:join", {"invite_code": f"wrong-{uuid.uuid4().hex}"},
                      "rate_limited" if self.wrong_codes[user] > 10 else "not_found")
            return
        else:
            payload = {"invite_code": room.code} if op == "join by code" else {"room_id": room.room_id}
            want = None if op == "join by code" or user in room.members else "not_found"
            ack = self.run(ph.dev.emit("room:join", payload))
            if op == "join by code" and self.wrong_codes[user] >= 10 and not ack["ok"]:
                want = "rate_limited"  # after 10 wrong codes (docs do not say whether a right one is let in)
            data = self.judge("room:join", payload, ack, want)
            if want:
                return
        room.members.add(user)
        room.present.add((user, ph.name))
        assert data["room"] == {"room_id": room.room_id, "name": data["room"]["name"], "invite_code": room.code,
                                "owner_id": room.owner}, data
        presence = {e["user_id"]: e for e in data["presence"]}
        assert set(presence) <= room.members and presence[user]["device_count"] >= 1, (presence, room.members)
        live = self.live[user]
        assert presence[user]["workout_id"] == (live.wid if live and live.room_id == room.room_id else None), data

    @invariant()
    def room_activity_reaches_exactly_the_present_devices(self) -> None:
        def got(ph: Phone) -> Counter:
            if ph.dev:
                ph.absorb()
            return Counter((a["room_id"], a["user_id"], a["type"], a["data"]["workout_id"],
                            a["data"]["set"]["set_id"] if a["type"] == "set_completed" else a["data"].get("set_id"))
                           for a in ph.activity)

        for ph in (ph for phones in self.phones.values() for ph in phones):
            if ph.dev and ph.expected - got(ph):
                self.run(ph.until(lambda ph=ph: not ph.expected - got(ph) or None, f"{ph.expected - got(ph)} missing"))
            assert got(ph) == ph.expected, (ph.user, ph.name, got(ph), ph.expected)

    @rule(pick=PICK, which=PICK)  # no precondition: whether a raced workout:complete won is up to the server
    def delete_from_history(self, pick: int, which: int) -> None:
        """DELETE a completed workout: gone from history, records derived again from what remains, and a
        live workout's records judged again from them."""
        users = [u for u in self.users if self.history[u]]
        if not users:
            return
        user = users[pick % len(users)]
        wid = list(self.history[user])[which % len(self.history[user])]
        assert self.rest_get(user, f"/api/v1/workouts/{wid}", "DELETE").status_code == 204
        del self.history[user][wid]
        assert self.rest_get(user, f"/api/v1/workouts/{wid}").status_code == 404
        assert self.rest_get(user, f"/api/v1/workouts/{wid}", "DELETE").status_code == 404
        self.check_history(user)
        if self.live[user]:
            response = self.rest_get(user, "/api/v1/workouts/active")
            self.live[user].check_snapshot(response.json(), self.bases(user))
