"""Every Redis key and channel name, in one place.

A user's keys and the keys of their workouts share one hash tag, the user's
shard `{N}`: so a script that touches the user's live pointer, a workout and the
shard's due queue at once stays in one slot and runs unchanged on Redis Cluster.
The shard count is fixed: changing it would move keys of live workouts.
"""

from __future__ import annotations

import zlib

SHARDS = 16
# The ends of a workout's keys after its state key, its log and the shard's due queue (KEYS 4-8).
LATER_SUFFIXES = (":sets", ":order", ":ops", ":base", ":recs")


def shard_of(user_id: str) -> int:
    return zlib.crc32(user_id.encode()) % SHARDS


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def shard(self, shard: int) -> str:
        return f"{self.prefix}{{{shard}}}"

    def live(self, user_id: str) -> str:
        return f"{self.shard(shard_of(user_id))}:u:{user_id}:live"

    def connections(self, user_id: str) -> str:
        """The user's connected devices, across processes (devices.py)."""
        return f"{self.shard(shard_of(user_id))}:u:{user_id}:conns"

    def room_rate(self, user_id: str) -> str:
        """The user's room:create, room:join and room:leave, rate limited (handlers/rooms.py)."""
        return f"{self.shard(shard_of(user_id))}:u:{user_id}:roomrate"

    def connect_rate(self, user_id: str) -> str:
        """The user's connects, rate limited (lua/devices_join.lua); in the slot of `connections`."""
        return f"{self.shard(shard_of(user_id))}:u:{user_id}:connects"

    def processes(self) -> list[str]:
        """Live server processes (by last heartbeat) and dead ones (by when found dead), one slot."""
        return [f"{self.prefix}{{procs}}:live", f"{self.prefix}{{procs}}:dead"]

    def due(self, shard: int) -> str:
        return f"{self.shard(shard)}:due"

    def active(self, shard: int) -> str:
        return f"{self.shard(shard)}:active"

    def workout(self, user_id: str, workout_id: str) -> list[str]:
        """The KEYS of every workout script, in the order lua/_lib.lua documents."""
        shard = shard_of(user_id)
        # Workout ids are chosen by clients and unique per user only, so they are
        # namespaced by the user.
        base = f"{self.shard(shard)}:u:{user_id}:w:{workout_id}"
        return [base, base + ":events", self.due(shard), *(base + s for s in LATER_SUFFIXES),
                self.live(user_id), self.active(shard)]

    def room_presence(self, room_id: str) -> list[str]:
        """The room's presence hash and its user -> workout hash (one slot: the room's tag)."""
        base = f"{self.prefix}{{r:{room_id}}}"
        return [f"{base}:presence", f"{base}:workouts"]

    def room_channel(self, room_id: str) -> str:
        """Where room:presence and room:activity of a room are published (lua/_lib.lua agrees)."""
        return f"{self.prefix}r:{room_id}"

    def process_rooms(self, process: str) -> str:
        """The rooms a process has present devices in: what to clean when it dies."""
        return f"{self.prefix}proc:{process}:rooms"

    def rest_rate(self, caller: str) -> str:
        """The REST side's rate limit of one caller ("u:<user>" or "a:<address>")."""
        return f"{self.prefix}rate:{caller}"

    def invite_guesses(self, user_id: str) -> str:
        return f"{self.prefix}guesses:{user_id}"

    def user_channel_prefix(self) -> str:
        return f"{self.prefix}u:"

    def user_channel(self, user_id: str) -> str:
        """Where every event of the user's workouts is published (all their devices listen)."""
        return f"{self.user_channel_prefix()}{user_id}"
