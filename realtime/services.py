"""What every request and event handler reaches: settings, clients, metrics.

Built by create_app; the lifespan fills in the network clients and empties them
again, so nothing opens a connection at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis

from .auth import TokenVerifier
from .metrics import Metrics
from .settings import Settings


@dataclass
class Services:
    settings: Settings
    verifier: TokenVerifier
    metrics: Metrics = field(default_factory=Metrics)
    redis: Redis | None = None
    db: asyncpg.Pool | None = None

    @property
    def live_redis(self) -> Redis:
        assert self.redis is not None, "used outside the app's lifespan"
        return self.redis

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.db is not None, "used outside the app's lifespan"
        return self.db
