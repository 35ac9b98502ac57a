"""Query and path parameters: parsed once, and a bad one is a problem naming it."""

from __future__ import annotations

import base64
import binascii
import uuid
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from realtime.core.fields import is_text

from .problems import invalid

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
BUCKETS = ("day", "week", "month")
# The IANA names Python and Postgres both know (`localtime` is a file of this machine's, not a zone).
_TIMEZONES = zoneinfo.available_timezones() - {"localtime", "Factory", "posixrules"}
# Dates a history can hold; outside them date arithmetic overflows.
_YEARS = range(1900, 2201)


def json_response(body: msgspec.Struct, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:  # "²" is a digit to isdigit
        raise invalid("limit", f"an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def path_uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise invalid(name, "a UUID") from None


def path_text(request: Request, name: str, max_length: int = 64) -> str:
    value: str = request.path_params[name]
    if not 1 <= len(value) <= max_length or not is_text(value):
        raise invalid(name, f"1 to {max_length} characters, without NUL")
    return value


def encode_cursor(at: datetime, *ids: uuid.UUID) -> str:
    """Opaque to clients: the keyset of the last item, base64url-encoded."""
    micros = int(at.timestamp() * 1_000_000)
    raw = msgspec.json.encode([micros, *(str(i) for i in ids)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


CURSOR_MAX_CHARS = 256


def cursor(request: Request, ids: int) -> tuple[Any, ...] | None:
    raw = request.query_params.get("cursor")
    if raw is None:
        return None
    if len(raw) > CURSOR_MAX_CHARS:  # ours are under 100; a longer one is only work to refuse
        raise invalid("cursor", "not a cursor this API returned")
    try:
        decoded = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        micros, *rest = decoded
        if not isinstance(micros, int) or len(rest) != ids or not all(isinstance(r, str) for r in rest):
            raise ValueError
        at = datetime.fromtimestamp(micros / 1_000_000, UTC)
        return (at, *(uuid.UUID(r) for r in rest))
    except (ValueError, TypeError, binascii.Error, msgspec.DecodeError, OverflowError, OSError, RecursionError):
        raise invalid("cursor", "not a cursor this API returned") from None


def timezone(request: Request) -> str:
    tz = request.query_params.get("tz", "UTC")
    if tz not in _TIMEZONES:
        raise invalid("tz", "an IANA time zone name, such as Europe/Berlin")
    return tz


def bucket(request: Request) -> str:
    value = request.query_params.get("bucket", "day")
    if value not in BUCKETS:
        raise invalid("bucket", "day, week or month")
    return value


def day_or_time(request: Request, name: str, tz: str, default: datetime, whole_day: bool = False) -> datetime:
    """`from`/`to`: a date (in `tz`; with `whole_day`, the end of that day) or an ISO 8601 date-time."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            if day.year not in _YEARS:
                raise ValueError
            day += timedelta(days=1 if whole_day else 0)
            return datetime(day.year, day.month, day.day, tzinfo=zoneinfo.ZoneInfo(tz))
        parsed = datetime.fromisoformat(raw)
        if parsed.year not in _YEARS:
            raise ValueError
    except ValueError:
        raise invalid(name, "a date (YYYY-MM-DD) or an ISO 8601 date-time, years 1900 to 2200") from None
    if parsed.tzinfo is None:
        raise invalid(name, "a date-time needs its UTC offset, e.g. 2026-11-01T00:00:00+01:00")
    return parsed


def range_of(request: Request, tz: str) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    end = day_or_time(request, "to", tz, now, whole_day=True)  # to=2026-11-30 includes that day
    start = day_or_time(request, "from", tz, end - timedelta(days=30))
    if start >= end:
        raise invalid("from", "must be before `to`")
    if end - start > timedelta(days=3 * 366):
        raise invalid("from", "the range may span at most 3 years")
    return start, end
