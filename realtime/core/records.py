"""Personal-record rules shared by Python and the Lua scripts (lua/_lib.lua: walk).

- max_weight: the heaviest weight lifted for at least one rep;
- max_reps: the most reps at one weight (a record per weight; bodyweight is weight 0);
- est_1rm: Epley, weight x (1 + reps / 30), rounded to 0.01 kg;
- max_volume: weight x reps of one set.
Warm-ups and sets without reps never count; a tie is not a record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from .protocol import SetRecord

_ITEM = re.compile(rb"\{[^}]*\}")  # a stored record: no nested object, no string a client chose


def number_text(x: float, places: int = 3) -> str:
    """A JSON number with at most `places` decimals, as lua/_lib.lua's `num` writes it."""
    text = f"{x:.{places}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def weight_key(weight_kg: float | None) -> str:
    """The weight as the Lua side writes it: at most 3 decimals, no trailing zeros."""
    return number_text(weight_kg or 0)


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


def weigh_last_set(base: bytes, stored: bytes, s: SetRecord) -> tuple[bytes, bytes]:
    """The exercise's records once `s` is logged as its workout's last set: weighed alone
    against the standing records (`base`, baseline_json) and the workout's records so far
    (`stored`: the JSON items as set_complete.lua stores them, without brackets). Returns
    the new stored text and the items `s` took. Only the set is weighed: the records so
    far are what a walk up to it found. set_complete.lua checks that `base` and `stored`
    are still what it holds and the set is last, and walks every set itself otherwise.
    """
    standing = msgspec.json.decode(base)
    best: dict[str, Any] = {k: standing.get(k) for k in ("max_weight", "est_1rm", "max_volume")}
    best.update((f"max_reps@{w}", r) for w, r in (standing.get("reps") or {}).items())
    texts = _ITEM.findall(stored)
    slots = []
    for record in msgspec.json.decode(b"[" + stored + b"]"):
        slot = record["type"] if "weight_kg" not in record else f"max_reps@{weight_key(record['weight_kg'])}"
        best[slot] = record["value"]
        slots.append(slot)
    items = dict(zip(slots, texts, strict=False))  # one text per item, as the regex finds them
    taken = []
    if s.set_type != "warmup" and s.reps is not None and s.reps >= 1:
        w = s.weight_kg or 0
        weighed = [("max_weight", float(number_text(w)), None),
                   ("est_1rm", float(number_text(w * (1 + s.reps / 30), 2)), None),
                   ("max_volume", float(number_text(w * s.reps)), None)] if w > 0 else []
        for kind, value, weight in [*weighed, ("max_reps", s.reps, weight_key(w))]:
            slot = kind if weight is None else f"max_reps@{weight}"
            previous = best.get(slot)
            if isinstance(previous, (int, float)) and value <= previous:
                continue
            before = number_text(previous) if isinstance(previous, (int, float)) else "null"
            at = "" if weight is None else f',"weight_kg":{weight}'
            text = (f'{{"type":"{kind}","value":{number_text(value)},"previous":{before},'
                    f'"set_id":"{s.set_id}"{at}}}').encode()
            items[slot] = text
            taken.append(text)
    return b",".join(items.values()), b",".join(taken)
