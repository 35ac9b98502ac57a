"""Personal-record rules shared by Python and the Lua scripts (lua/_lib.lua: walk).

- max_weight: the heaviest weight lifted for at least one rep;
- max_reps: the most reps at one weight (a record per weight; bodyweight is weight 0);
- est_1rm: Epley, weight x (1 + reps / 30), rounded to 0.01 kg;
- max_volume: weight x reps of one set.
Warm-ups and sets without reps never count; a tie is not a record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec


def weight_key(weight_kg: float | None) -> str:
    """The weight as the Lua side writes it: at most 3 decimals, no trailing zeros."""
    text = f"{weight_kg or 0:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def baseline_json(rows: Iterable[Any]) -> bytes:
    """The user's standing records for one exercise, in the shape `walk` reads."""
    baseline: dict[str, Any] = {}
    reps: dict[str, int] = {}
    for row in rows:
        if row["type"] == "max_reps":
            reps[weight_key(row["weight_kg"])] = int(row["value"])
        else:
            baseline[row["type"]] = row["value"]
    if reps:
        baseline["reps"] = reps
    return msgspec.json.encode(baseline)
