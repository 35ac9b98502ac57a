"""The one error type a handler raises; the edge turns it into an error ack."""

from __future__ import annotations

from typing import Any, Literal

ErrorCode = Literal[
    "invalid_payload", "unauthorized", "forbidden", "not_found", "conflict",
    "rate_limited", "too_large", "unavailable", "unstorable", "internal",
]


class AppError(Exception):
    def __init__(self, code: ErrorCode, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
