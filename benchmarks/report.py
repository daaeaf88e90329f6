"""Targets of issues #16 and #17, the README table and the PNG chart, all from bench.json.

>>> check(0.45, 0.40, "min")
{'target': 0.4, 'measured': 0.45, 'pass': True, 'gap': 0.0, 'gap_pct': 0.0}
>>> check(60.0, 50.0, "max")["gap_pct"]
20.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {
    # the 1-process pipeline against the passthrough ceiling of the same run
    "ratio_to_ceiling": 0.40,
    "p99_ms_at_5000": 50.0,
    "p99_ms_at_1000": 25.0,
    "redis_calls_per_event": 0.02,
    "redis_server_us_per_event": 10.0,
    "rss_slope_mb_per_million_events": 10.0,
}


def check(measured: float | None, target: float, kind: str) -> dict[str, Any]:
    """Pass or miss, and by how much (``kind``: ``min`` or ``max`` is the target)."""
    if measured is None:
        return {"target": target, "measured": None, "pass": False, "gap": None, "gap_pct": None}
    ok = measured >= target if kind == "min" else measured <= target
    gap = 0.0 if ok else abs(target - measured)
    return {
        "target": target,
        "measured": measured,
        "pass": ok,
        "gap": round(gap, 4),
        "gap_pct": round(gap / target * 100, 1),
    }


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Check the bench results against the :data:`TARGETS`, one verdict per target."""
    p1 = results["pipeline"]["1"]
    verdicts = {
        "1 process >= 40% of the ceiling": check(
            p1.get("ratio_to_ceiling"), TARGETS["ratio_to_ceiling"], "min"
        ),
    }
    for rate in (5000, 1000):
        at = next((r for r in results["latency"] if r["rate"] == rate), None)
        target = TARGETS[f"p99_ms_at_{rate}"]
        verdicts[f"p99 at {rate} ev/s <= {target:g} ms"] = check(
            at["p99_ms"] if at else None, target, "max"
        ) | ({"sustainable": at["sustainable"]} if at else {})
    return verdicts | {
        "redis round trips per event <= 0.02": check(
            p1["redis_calls_per_event"], TARGETS["redis_calls_per_event"], "max"
        ),
        "redis server us per event <= 10": check(
            p1.get("redis_server_us_per_event"), TARGETS["redis_server_us_per_event"], "max"
        ),
        "memory flat (RSS slope <= 10 MB per 1M events)": check(
            p1["memory"]["rss_slope_mb_per_million_events"],
            TARGETS["rss_slope_mb_per_million_events"],
            "max",
        )
        | {"events": p1["memory"]["events"], "target_events": 5_000_000},
    }


def markdown(results: dict[str, Any]) -> str:
    """Return the README table."""
    ceiling = results["ceiling"]["events_per_second"]
    lines = [
        f"Measured {results['started']} on {results['machine']['cpus']} CPUs "
        f"({results['settings']['events']} events of the synthetic standard mix).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| ceiling: consume -> orjson -> produce, 1 process | {ceiling:,.0f} ev/s |",
    ]
    for n, p in sorted(results["pipeline"].items()):
        lines.append(
            f"| full pipeline, {n} process(es) | {p['events_per_second']:,.0f} ev/s "
            f"({p['events_per_second_per_process']:,.0f} per process, "
            f"{p['events_per_second_per_process'] / ceiling:.1%} of the ceiling) |"
        )
    p1 = results["pipeline"]["1"]
    lines.append(f"| Redis round trips per event | {p1['redis_calls_per_event']:.4f} |")
    if "redis_server_us_per_event" in p1:
        lines.append(
            f"| Redis server time per event | {p1['redis_server_us_per_event']} us |"
            if p1["redis_server_us_per_event"] is not None
            else "| Redis server time per event | not measured |"
        )
    lines += _script_lines(results.get("redis_scripts", {}))
    if "process_cpu_us_per_event" in p1:
        lines.append(f"| process CPU per event, 1 process | {p1['process_cpu_us_per_event']} us |")
    top = list(p1["profile"]["steps"].items())[:4]
    lines.append(
        "| where the time goes (share of timed steps) | "
        + ", ".join(f"{step} {row['share']:.0%}" for step, row in top)
        + " |"
    )
    mem = p1["memory"]
    lines.append(
        f"| RSS over {mem['events']:,} events | {mem['rss_start_mb']} -> {mem['rss_end_mb']} MB, "
        f"slope {mem['rss_slope_mb_per_million_events']} MB per 1M events |"
    )
    for r in results["latency"]:
        state = "" if r["sustainable"] else " (UNSUSTAINABLE: lag grows)"
        lines.append(
            f"| latency at {r['rate']:,.0f} ev/s | p50 {r['p50_ms']} / p95 {r['p95_ms']} / "
            f"p99 {r['p99_ms']} ms{state} |"
        )
    lines += ["", "| target | measured | result |", "|---|---|---|"]
    for name, t in results["targets"].items():
        verdict = "pass" if t["pass"] else f"miss by {t['gap_pct']}%"
        lines.append(f"| {name} | {t['measured']} | {verdict} |")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    """Throughput bars (with the ceiling) and latency percentiles per rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["ceiling"] + [f"pipeline -p {n}" for n in sorted(results["pipeline"])]
    rates = [results["ceiling"]["events_per_second"]] + [
        results["pipeline"][n]["events_per_second"] for n in sorted(results["pipeline"])
    ]
    left.bar(names, rates, color=["#999999", "#1f77b4", "#2ca02c"][: len(names)])
    target = TARGETS["ratio_to_ceiling"] * results["ceiling"]["events_per_second"]
    left.axhline(target, color="red", linestyle="--")
    left.set_ylabel("events / s")
    left.set_title("Throughput (red: 40% of the ceiling, 1 process)")
    lat = results["latency"]
    labels = [f"{r['rate']:g}" + ("" if r["sustainable"] else "*") for r in lat]
    width = 0.25
    for i, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        xs = [j + (i - 1) * width for j in range(len(lat))]
        right.bar(xs, [r[key] or 0 for r in lat], width, label=key[:3])
    right.set_xticks(range(len(lat)), labels)
    right.axhline(TARGETS["p99_ms_at_5000"], color="red", linestyle="--")
    right.axhline(TARGETS["p99_ms_at_1000"], color="orange", linestyle=":")
    right.set_yscale("log")
    right.set_xlabel("input rate, events / s (* unsustainable)")
    right.set_ylabel("ms")
    right.set_title("End-to-end latency (p99 targets: red 5,000 ev/s, orange 1,000)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _script_lines(scripts: dict[str, Any]) -> list[str]:
    """Rows of the Redis server time per script (benchmarks/redis_bench.py), if measured."""
    lines = []
    for name, run in scripts.items():
        if not isinstance(run, dict) or "by_step" not in run:
            continue
        steps = ", ".join(f"{s} {r['server_us_per_event']}" for s, r in run["by_step"].items())
        primaries = " / ".join(str(us) for us in run["server_us_per_event_by_primary"])
        lines.append(
            f"| Redis us per event by script, {name.replace('_', ' ')} | {steps} "
            f"(by primary {primaries}; busiest allows "
            f"{run['events_per_second_busiest_primary']:,} ev/s) |"
        )
    return lines
