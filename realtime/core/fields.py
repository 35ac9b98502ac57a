"""The field types of the protocol's Structs: lengths, ranges, and the rule for text.

Text that is stored or keyed on never holds a NUL (Postgres refuses it in text) or a lone
UTF-16 surrogate (no UTF-8 encodes it): refused when it comes in, not found when the workout
is stored (handlers/namespace.py words msgspec's message for it).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta

TEXT = r"^[^\x00\ud800-\udfff]*$"  # escapes for the regex engine, so the schemas stay encodable
_TEXT = re.compile(TEXT)


def is_text(value: str) -> bool:
    """Whether `value` keeps the rule the Structs' text fields keep (for text that comes in
    elsewhere: a token's `sub`, a REST path)."""
    return _TEXT.match(value) is not None


DeviceId = Annotated[str, Meta(min_length=1, max_length=64, pattern=TEXT)]
Token = Annotated[str, Meta(min_length=1, max_length=8192)]
ExerciseId = Annotated[str, Meta(min_length=1, max_length=64, pattern=TEXT)]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=TEXT)]
Notes = Annotated[str, Meta(max_length=2000, pattern=TEXT)]
WeightKg = Annotated[float, Meta(ge=0, le=2000)]
Reps = Annotated[int, Meta(ge=0, le=10000)]
DurationS = Annotated[float, Meta(ge=0, le=86400)]
DistanceM = Annotated[float, Meta(ge=0, le=10_000_000)]
Rpe = Annotated[float, Meta(ge=1, le=10, multiple_of=0.5)]
SetType = Literal["normal", "warmup", "drop", "failure"]
EpochMs = Annotated[int, Meta(ge=0, le=32_503_680_000_000)]  # up to the year 3000
RecordType = Literal["max_weight", "max_reps", "est_1rm", "max_volume"]
