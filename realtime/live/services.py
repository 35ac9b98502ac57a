"""What every request and event handler reaches.

`Services` is built by create_app (settings, token verifier, metrics); the
lifespan opens the network clients and sets `runtime`, so nothing connects at
import time, and using a client outside the lifespan fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from redis.asyncio import Redis

from realtime.core.auth import TokenVerifier
from realtime.core.metrics import Metrics
from realtime.core.settings import Settings

if TYPE_CHECKING:
    from .devices import Devices
    from .fanout import Fanout
    from .live_state import LiveState
    from .persist import Writer
    from .scheduler import TimerScheduler


@dataclass
class Runtime:
    redis: Redis
    db: asyncpg.Pool
    live: LiveState
    fanout: Fanout
    timers: TimerScheduler
    devices: Devices
    writer: Writer


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    metrics: Metrics = field(default_factory=Metrics)
    runtime: Runtime = field(init=False)
