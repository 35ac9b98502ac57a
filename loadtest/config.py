"""What a load run does: users, devices, rate, rest timers, rooms, for how long."""

from __future__ import annotations

from dataclasses import dataclass

ARRIVAL_S = 2.0  # users arrive over at least this long before the load starts


@dataclass
class Config:
    url: str
    secret: str
    users: int
    devices: int
    rate: float  # sets per second, all users together
    rest_s: float
    duration_s: float
    connect_rate: float  # connections per second, all workers together
    timers_only: bool
    label: str
    run_id: str
    idle: bool = False  # connect and hold, nothing else (memory per idle connection)
    storm: float = 0.0  # share of the devices that drop at once, `storm_at` s into the load, and come back
    storm_at: float = 0.0
    storm_spread_s: float = 1.0  # the dropped devices reconnect spread over this long, as apps' jitter does
    failover: bool = False  # a device whose server goes away reconnects to the next URL (kill -9 runs)
    rooms: float = 0.0  # share of the users training together in group rooms
    room_size: int = 5  # users per room
    noisy: bool = False  # one more user on ten devices at the rate limit, the costliest way (noisy.py)
    workout_sets: int = 0  # a user completes the workout after this many sets and starts another (0: never)
    # --chaos (chaos.py): the devices' own faults, (seconds into the load, "drop" | "stop_reading"),
    # and the database whose stored workouts the users check at the end.
    chaos: list[tuple[float, str]] | None = None
    database_url: str | None = None
    device_limit: int = 10  # the server's MAX_DEVICES_PER_USER, checked at the end of a chaos run

    @property
    def period(self) -> float:
        """Seconds between one user's sets. Timers-only users chain their own timers: it only
        staggers their starts."""
        return self.users / self.rate if self.rate > 0 and not self.timers_only else 2.0

    @property
    def arrival_s(self) -> float:
        """Users arrive (clock sync, workout:start) spread over this long; then the load starts.
        One period, but never so short that every user's arrival is one burst that spills
        into the first seconds measured (1,000 users at 4,000 sets/s: a period is 0.25 s)."""
        return max(self.period, ARRIVAL_S)
