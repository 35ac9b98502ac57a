"""A load run's results as a reader wants them: the highest rate sustained, the rounds' median,
liveset against the peer, and the table printed at the end."""

from __future__ import annotations

from typing import Any


def fresh_server_memory_only(runs: list[dict[str, Any]]) -> None:
    """Memory per connection means something only on a server's first run: later runs
    start on a heap that earlier ones grew."""
    for run in runs[1:]:
        run["rss_kb_per_connection"] = None


SUSTAINED_P99_MS = 50


def sustained(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per server, the highest set rate whose run kept sync p99 within SUSTAINED_P99_MS with no error."""
    best: dict[str, float | None] = {}
    for r in results:
        server = r["label"].split(" @")[0]
        ok = not r["errors"] and r["sync_latency_ms"]["p99"] is not None and \
            r["sync_latency_ms"]["p99"] <= SUSTAINED_P99_MS
        rate = r["config"]["rate"]
        current = best.setdefault(server, None)
        if ok and (current is None or rate > current):
            best[server] = rate
    return best


ROUND = " round "  # "<server> round <n>": a round's label, which median_of_rounds takes apart


def median_of_rounds(best: dict[str, float | None]) -> dict[str, float | None]:
    """Per server, the median of its rounds' highest sustained rates (the lower of the two
    middle ones for an even count; a round that sustained none counts below every rate)."""
    rounds: dict[str, list[float | None]] = {}
    for label, rate in best.items():
        rounds.setdefault(label.split(ROUND)[0], []).append(rate)
    return {server: sorted(rates, key=lambda r: -1.0 if r is None else r)[(len(rates) - 1) // 2]
            for server, rates in rounds.items()}


def versus_peer(best: dict[str, float | None], rates: list[float]) -> str | None:
    """liveset's highest sustained rate over the peer's, as scenario 3 judges it. A server that
    sustained the highest rate tried may sustain more, and one that sustained none of them less
    than the lowest, so the ratio is then only a bound."""
    if len(best) < 2:
        return None
    name, peer = next((server.split(" x")[0], rate) for server, rate in best.items()
                      if not server.startswith("liveset"))
    ours = next((rate for server, rate in best.items() if server.startswith("liveset")), None)
    top, lowest = max(rates), min(rates)
    target, head = "(scenario 3's target: 1.5 x)", f"liveset / {name}:"
    if peer is None and ours is None:
        return f"{head} unknown, neither sustained the lowest rate tried ({lowest:g}/s): try lower rates"
    if peer is None:
        return f"{head} > {ours / lowest:.2f} x, the peer sustained none of the rates tried {target}"
    if ours is None:
        return f"{head} < {lowest / peer:.2f} x, liveset sustained none of the rates tried {target}"
    if ours == top and peer == top:
        return f"{head} unknown, both sustained the highest rate tried ({top:g}/s): try higher rates"
    bound = ">= " if ours == top else "<= " if peer == top else ""
    return f"{head} {bound}{ours / peer:.2f} x {target}"


NOISY = "+ noisy neighbour"  # the label's tail of a run with loadtest/noisy.py beside the users


def neighbour_effect(results: list[dict[str, Any]]) -> str:
    """The ordinary users' p99 with the noisy neighbour against without, per rate and round, and
    what the neighbour was answered: the issue's bar is within 2x."""
    lines = []
    quiet = {r["label"]: r for r in results if NOISY not in r["label"]}
    for r in results:
        if NOISY not in r["label"]:
            continue
        base = quiet.get(r["label"].replace(f" {NOISY}", ""))
        if base is None:
            continue
        for name in ("sync_latency_ms", "ack_latency_ms", "timer_lateness_ms"):
            was, now = base[name]["p99"], r[name]["p99"]
            ratio = f"{now / was:.2f}x" if was and now is not None else "n/a"
            lines.append(f"{r['label']}: others' {name.removesuffix('_ms').replace('_', ' ')} p99 "
                         f"{was} -> {now} ms ({ratio})")
        lines.append(f"  redis cpu {base['redis_cpu_percent']}% -> {r['redis_cpu_percent']}%; "
                     f"the neighbour: {r['noisy_neighbour']}")
    return "\n".join(lines)


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        ("connections", lambda r: r["connected"]),
        ("sets/s sent", lambda r: r["sets_per_s"]),
        ("sync p50 / p99 ms", lambda r: f"{r['sync_latency_ms']['p50']} / {r['sync_latency_ms']['p99']}"),
        ("ack p50 / p99 ms", lambda r: f"{r['ack_latency_ms']['p50']} / {r['ack_latency_ms']['p99']}"),
        ("room activity p50 / p99 ms", lambda r: f"{r['room_latency_ms']['p50']} / {r['room_latency_ms']['p99']}"),
        ("timer late p50 / p99 ms", lambda r: f"{r['timer_lateness_ms']['p50']} / {r['timer_lateness_ms']['p99']}"),
        ("  of which firing p50 / p99", lambda r: f"{r['timer_fired_late_ms']['p50']} / "
                                                 f"{r['timer_fired_late_ms']['p99']}"),
        ("timers fired", lambda r: r["timers_fired"]),
        ("connect p99 ms", lambda r: r["connect_ms"]["p99"]),
        ("gaps / duplicates / late", lambda r: f"{r['gaps']} / {r['duplicates']} / {r.get('out_of_order', 0)}"),
        ("dropped / resynced in 5 s", lambda r: f"{r['dropped']} / {r['resynced_within_5s']}"),
        ("reconnect p50 / p99 ms", lambda r: f"{r['reconnect_ms']['p50']} / {r['reconnect_ms']['p99']}"),
        ("resync p99 / max ms", lambda r: f"{r['resync_ms']['p99']} / {r['resync_ms']['max']}"),
        ("resync gaps / retried calls", lambda r: f"{r['resync_gaps']} / {r['retries']}"),
        ("acked sets lost / dup", lambda r: f"{r['history']['lost']} / {r['history']['duplicated']}"
                                            if r["history"]["users_checked"] else "not checked"),
        ("errors", lambda r: sum(r["errors"].values())),
        ("server cpu mean / max %", lambda r: f"{r['server_cpu_percent']['mean']} / {r['server_cpu_percent']['max']}"),
        ("server cpu ms / set under load", lambda r: r.get("server_cpu_ms_per_set")),
        ("redis cpu ms / set under load", lambda r: r.get("redis_cpu_ms_per_set")),
        ("generator cpu ms / set", lambda r: r.get("generator_cpu_ms_per_set")),
        ("server loop stalls >25 / >100 ms", lambda r: f"{r['server_loop_stalls']['over_25ms']} / "
                                                      f"{r['server_loop_stalls']['over_100ms']}"
                                                      if r.get("server_loop_stalls") else "n/a"),
        ("generator stalls >25 ms / max", lambda r: f"{r['generator_stalls']['over_25ms']} / "
                                                   f"{r['generator_stalls']['max_ms']}"),
        ("server rss max MB", lambda r: r["server_rss_mb"]["max"]),
        ("rss KB / connection", lambda r: r["rss_kb_per_connection"]),
    ]
    width = max(len(name) for name, _ in rows) + 2
    cols = [r["label"] for r in results]
    lines = ["".ljust(width) + "".join(c.rjust(22) for c in cols)]
    for name, get in rows:
        lines.append(name.ljust(width) + "".join(str(get(r)).rjust(22) for r in results))
    for r in results:
        if r["errors"]:
            lines.append(f"{r['label']} errors: {r['errors']}")
    return "\n".join(lines)


DRIFT_WINDOW_S = 300  # a long run's windows, each summarised on one line (drift)


def drift(run: dict[str, Any]) -> str | None:
    """A run of 10 minutes or more, window by window: whether latency, memory, tasks and Redis
    stay flat after the warm-up, or grow (a leak) or creep (a backlog)."""
    if run["config"]["duration_s"] < 2 * DRIFT_WINDOW_S:
        return None
    timeline = run["timeline"]

    def window(t: float) -> int:
        return int(t // DRIFT_WINDOW_S)

    def p99(samples: list[list[float]], w: int) -> str:
        values = sorted(x for t, x in samples if window(t) == w)
        return f"{values[max(0, int(len(values) * 0.99) - 1)]:.1f}" if values else "-"

    def mean(samples: list[list[float]], column: int, w: int) -> str:
        values = [s[column] for s in samples if window(s[0]) == w]
        return f"{sum(values) / len(values):,.0f}" if values else "-"

    last = max(window(s[0]) for s in timeline["server"]) if timeline["server"] else 0
    lines = [f"{'window':>12} {'sync p99 ms':>12} {'timer p99 ms':>13} {'server RSS MB':>14} {'tasks':>7} "
             f"{'Redis MB':>9} {'Redis keys':>11}"]
    for w in range(last + 1):
        span = f"{w * DRIFT_WINDOW_S // 60}-{(w + 1) * DRIFT_WINDOW_S // 60} min"
        lines.append(f"{span:>12} {p99(timeline['sync_ms'], w):>12} {p99(timeline['timer_late_ms'], w):>13} "
                     f"{mean(timeline['server'], 2, w):>14} {mean(timeline['state'], 3, w):>7} "
                     f"{mean(timeline['state'], 1, w):>9} {mean(timeline['state'], 2, w):>11}")
    return "\n".join(lines)
