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


class _Weighing:
    """One exercise's records as a walk over its sets in order builds them (lua/_lib.lua: walk),
    from the standing records (`base`, baseline_json) and the workout's records so far
    (`stored`: the JSON items as the scripts store them, without brackets). A walk weighs up to
    500 sets in the server's event loop: a step compares numbers, and an item's text is written
    once, at the end."""

    def __init__(self, base: bytes, stored: bytes = b"") -> None:
        standing = msgspec.json.decode(base)
        self.best: dict[str, Any] = {k: standing.get(k) for k in ("max_weight", "est_1rm", "max_volume")}
        self.best.update((f"max_reps@{w}", r) for w, r in (standing.get("reps") or {}).items())
        texts = _ITEM.findall(stored)
        slots = []
        for record in msgspec.json.decode(b"[" + stored + b"]"):
            slot = _slot(record)
            self.best[slot] = record["value"]
            slots.append(slot)
        # slot -> its item: the text stored (one per item, as the regex finds them), or what
        # a set took here: (type, value, previous, set_id, weight key or None)
        self.items: dict[str, bytes | tuple[str, float, Any, str, str | None]] = dict(
            zip(slots, texts, strict=False))
        self.weight_keys: dict[float, str] = {}

    def weigh(self, s: SetRecord) -> list[str]:
        """Take the records `s` beats; returns the slots it took."""
        reps = s.reps
        if reps is None or reps < 1 or s.set_type == "warmup":
            return []
        w = s.weight_kg or 0
        wk = self.weight_keys.get(w)
        if wk is None:
            wk = self.weight_keys[w] = weight_key(w)
        # round() and number_text agree: both round the float's exact value correctly.
        weighed: list[tuple[str, float, str | None]] = [
            ("max_weight", round(w, 3), None), ("est_1rm", round(w * (1 + reps / 30), 2), None),
            ("max_volume", round(w * reps, 3), None)] if w > 0 else []
        weighed.append(("max_reps", reps, wk))
        taken = []
        best = self.best
        for kind, value, weight in weighed:
            slot = kind if weight is None else "max_reps@" + weight
            previous = best.get(slot)
            if isinstance(previous, (int, float)) and value <= previous:
                continue
            best[slot] = value
            self.items[slot] = (kind, value, previous, s.set_id, weight)
            taken.append(slot)
        return taken

    def item(self, slot: str) -> bytes:
        item = self.items[slot]
        if isinstance(item, bytes):
            return item
        kind, value, previous, set_id, weight = item
        before = number_text(previous) if isinstance(previous, (int, float)) else "null"
        at = "" if weight is None else f',"weight_kg":{weight}'
        return f'{{"type":"{kind}","value":{number_text(value)},"previous":{before},"set_id":"{set_id}"{at}}}'.encode()

    def text(self) -> bytes:
        return b",".join(self.item(slot) for slot in self.items)


def weigh_last_set(base: bytes, stored: bytes, s: SetRecord) -> tuple[bytes, bytes]:
    """The exercise's records once `s` is logged as its workout's last set, weighed alone
    against the records so far; returns the new stored text and the items `s` took.
    set_complete.lua checks that `base` and `stored` are still what it holds and the set is
    last, and has the caller walk every set (`Walk`) otherwise.
    """
    weighing = _Weighing(base, stored)
    taken = weighing.weigh(s)
    return weighing.text(), b",".join(weighing.item(slot) for slot in taken)


class Walk:
    """An exercise's records from every set of the workout, fed in order (in pieces, so that a
    walk of 500 sets need not hold the event loop at once), and the news: the items `set_id`
    holds that it did not hold in `before`, the records stored until now, or holds with a
    better value. What lua/_lib.lua's rewalk finds, done here instead of in the Valkey every
    process shares (the scripts check it against the workout's seq)."""

    def __init__(self, base: bytes, exercise: str) -> None:
        self.weighing = _Weighing(base)
        self.exercise = exercise

    def feed(self, sets: Iterable[SetRecord]) -> None:
        for s in sets:
            if s.exercise_id == self.exercise:
                self.weighing.weigh(s)

    def result(self, before: bytes, set_id: str) -> tuple[bytes, bytes]:
        """The exercise's records and the news."""
        held = {_slot(r): r["value"] for r in msgspec.json.decode(b"[" + before + b"]") if r["set_id"] == set_id}
        news = [self.weighing.item(slot) for slot, item in self.weighing.items.items()
                if isinstance(item, tuple) and item[3] == set_id and (slot not in held or item[1] > held[slot])]
        return self.weighing.text(), b",".join(news)


def _slot(record: dict[str, Any]) -> str:
    return record["type"] if "weight_kg" not in record else f"max_reps@{weight_key(record['weight_kg'])}"
