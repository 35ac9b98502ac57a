"""Structured logs: one JSON object per line in production, readable lines in dev.

Callers pass facts as `extra={...}`; nothing here ever sees a token, because no
caller logs one (auth failures log the reason, not the credential).
"""

from __future__ import annotations

import logging
import sys
import time

import msgspec

# uvicorn adds `color_message`, a duplicate of the message with terminal colours.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}
_encoder = msgspec.json.Encoder()


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _NoPerConnectionLines(logging.Filter):
    """uvicorn logs every websocket's accept, open and close at INFO: thousands of lines
    (and their encoding cost) per reconnect storm, with nothing to act on. /metrics counts them."""

    _DROP = ("connection open", "connection closed")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self._DROP:
            return False
        return not (isinstance(record.msg, str) and '"WebSocket %s"' in record.msg)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers and levels before the app factory runs; route
    # its loggers through ours, at our level.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level)
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoPerConnectionLines) for f in error_log.filters):
        error_log.addFilter(_NoPerConnectionLines())
    # Engine.IO/Socket.IO log every packet at INFO; only their warnings are worth a line.
    for name in ("engineio.server", "socketio.server"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
