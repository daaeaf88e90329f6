"""The figures of ``cxstream report``, computed from the output records only.

:func:`read_dir` reads an offline run's JSONL files, :func:`read_kafka` the
output topics (each to its end, through :func:`replay.kafka_io.record`);
:func:`figures` turns them into every number the report shows, so a test can
check each against a hand computation from the same files.

Definitions: the overall NPS of a period is the answer-weighted mean of the
overall daily ``KeyDrivers`` records (NPS is linear in the counts, so this is
the period's NPS); a window's touchpoint figures are its last revision, the
touchpoint trend and leaderboard use the daily NPS windows (else the longest),
and the leaderboard is that of the latest boundary that ranks two touchpoints
or more (the quintiles need two); revenue is the
lifetime value of the profiles, a snapshot's increase counted in the month of
its ``last_seen`` (offline runs keep the final snapshot only, so there all of
a customer's revenue falls in the month they were last seen); the churn rate
is the share of profiles in stage ``churned``. The CMO's NBAs are the NBA records;
suppressions and acceptance are sums over the ``DecisionSummary`` records
(``decisions.jsonl``) of their windows (an item after its window closed is only
counted, in ``late_items``): acceptance of an action is its accepted over its
answered (accepted, rejected, dismissed, no_response) summed over the windows, not
a mean of rates.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

Row = dict[str, Any]
DAY_SECONDS = 86400.0
#: The outcomes an acceptance rate counts as answers (an impression is none).
ANSWERED = ("accepted", "rejected", "dismissed", "no_response")


@dataclass
class Outputs:
    """The output records a report reads."""

    insights: list[Row] = field(default_factory=list)
    nps: list[Row] = field(default_factory=list)
    alerts: list[Row] = field(default_factory=list)
    nba: list[Row] = field(default_factory=list)
    profiles: list[Row] = field(default_factory=list)  # every snapshot, in order
    decisions: list[Row] = field(default_factory=list)


KINDS = ("insights", "nps", "alerts", "nba", "profiles", "decisions")


def _lines(path: Path) -> list[Row]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def read_dir(out_dir: Path) -> Outputs:
    """Read ``<kind>.jsonl`` of an offline run."""
    return Outputs(**{kind: _lines(out_dir / f"{kind}.jsonl") for kind in KINDS})


def read_kafka(client_config: dict[str, str], topics: dict[str, str]) -> Outputs:
    """Read each output topic from its beginning to its end (``topics``: kind -> name)."""
    from replay.kafka_io import record
    from replay.log import read_log

    out = Outputs()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            log = Path(tmp) / f"{kind}.jsonl"
            record(client_config, topics[kind], log)
            rows = [orjson.loads(m.value) for m in read_log(log) if m.value is not None]
            setattr(out, kind, rows)
    return out


def since(outputs: Outputs, start: str) -> Outputs:
    """Keep records of event time at or after ``start`` (RFC 3339, compared as UTC text)."""

    def keep(row: Row) -> bool:
        when = row.get("window_start") or row.get("time") or row.get("last_seen") or ""
        return bool(when >= start)

    return Outputs(**{kind: [r for r in getattr(outputs, kind) if keep(r)] for kind in KINDS})


def _length(row: Row) -> str:
    return f"{row['window_start']}/{row['window_end']}"


def _seconds(row: Row) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(row["window_start"])
    return (datetime.fromisoformat(row["window_end"]) - start).total_seconds()


def _final(windows: list[Row]) -> list[Row]:
    latest: dict[str, Row] = {}
    for row in windows:
        if row["id"] not in latest or row["revision"] >= latest[row["id"]]["revision"]:
            latest[row["id"]] = row
    return sorted(latest.values(), key=lambda r: (r["window_start"], r["touchpoint"]))


def cx_figures(out: Outputs) -> dict[str, Any]:
    """Return the CX lead's figures."""
    overall = [r for r in out.insights if r["touchpoint"] is None]
    short = min((_seconds(r) for r in overall), default=0.0)
    long_ = max((_seconds(r) for r in overall), default=0.0)
    daily = sorted((r for r in overall if _seconds(r) == short), key=lambda r: r["window_start"])
    answers = sum(r["answers"] for r in daily)
    nps = sum(r["nps"] * r["answers"] for r in daily) / answers if answers else None
    windows = [w for w in _final(out.nps) if w["channel"] is None]
    lengths = {_seconds(w) for w in windows}
    day = DAY_SECONDS if DAY_SECONDS in lengths else max(lengths, default=0.0)
    tp_daily = [w for w in windows if _seconds(w) == day]
    trend: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for w in tp_daily:
        if w["nps"] is not None:
            trend[w["touchpoint"]].append((w["window_start"], w["nps"]))
    boards = [w for w in tp_daily if w["analysis"].get("quintile_size") is not None]
    last = max((w["window_start"] for w in boards), default=None)
    ranked = [w for w in boards if w["window_start"] == last and w["analysis"]["rank"]]
    board = sorted(ranked, key=lambda w: w["analysis"]["rank"])
    with_drivers = [r for r in overall if r["drivers"] and _seconds(r) == long_]
    latest = max(with_drivers, key=lambda r: r["window_start"], default=None)
    channel_rows = [r for r in overall if r["channels"] and _seconds(r) == long_]
    latest_channels = max(channel_rows, key=lambda r: r["window_start"], default=None)
    return {
        "nps": round(nps, 2) if nps is not None else None,
        "answers": answers,
        "nps_trend": [(r["window_start"], r["nps"], r["answers"]) for r in daily],
        "touchpoint_trend": dict(sorted(trend.items())),
        "leaderboard_window": last,
        "leaderboard": [
            {
                "touchpoint": w["touchpoint"],
                "rank": w["analysis"]["rank"],
                "nps": w["nps"],
                "responses": w["responses"],
                "quintile": w["analysis"]["quintile"],
                "impact": w["analysis"]["impact"],
            }
            for w in board
        ],
        "quintile_gap": board[0]["analysis"]["quintile_gap"] if board else None,
        "drivers_window": latest["window_start"] if latest else None,
        "drivers": latest["drivers"] if latest else [],
        "r2": latest["r2"] if latest else None,
        "pockets": [a for a in out.alerts if a["kind"] == "nps_pocket"],
        "channels": latest_channels["channels"] if latest_channels else [],
    }


def _final_profiles(profiles: list[Row]) -> list[Row]:
    last: dict[str, Row] = {}
    for p in profiles:
        last[p["customer_id"]] = p
    return [last[c] for c in sorted(last)]


def ceo_figures(out: Outputs, nps: float | None) -> dict[str, Any]:
    """Return the CEO's figures."""
    seen: dict[str, float] = {}
    revenue: defaultdict[str, float] = defaultdict(float)
    for p in out.profiles:
        value = float(p["lifetime_value"])
        revenue[p["last_seen"][:7]] += value - seen.get(p["customer_id"], 0.0)
        seen[p["customer_id"]] = value
    months = sorted(revenue)
    growth = {
        m: round(100.0 * (revenue[m] / revenue[prev] - 1.0), 2) if revenue[prev] else None
        for prev, m in pairwise(months)
    }
    final = _final_profiles(out.profiles)
    churned = sum(1 for p in final if p.get("journey_stage") == "churned")
    segments: dict[str, list[Row]] = defaultdict(list)
    for p in final:
        segments[p.get("segment") or "none"].append(p)
    by_segment = {}
    for name, rows in sorted(segments.items()):
        risks = [p["churn_score"] for p in rows if p.get("churn_score") is not None]
        by_segment[name] = {
            "customers": len(rows),
            "churn_rate": round(
                sum(p.get("journey_stage") == "churned" for p in rows) / len(rows), 4
            ),
            "churn_risk": round(sum(risks) / len(risks), 4) if risks else None,
            "ltv": round(sum(float(p["lifetime_value"]) for p in rows) / len(rows), 2),
        }
    return {
        "revenue": round(sum(seen.values()), 2),
        "revenue_by_month": {m: round(revenue[m], 2) for m in months},
        "growth_by_month": growth,
        "nps": nps,
        "customers": len(final),
        "churn_rate": round(churned / len(final), 4) if final else None,
        "by_segment": by_segment,
    }


def _summed(out: Outputs, part: str, keys: tuple[str, str]) -> Counter[tuple[str, str]]:
    total: Counter[tuple[str, str]] = Counter()
    for summary in out.decisions:
        for row in summary[part]:
            total[row[keys[0]], row[keys[1]]] += row["count"]
    return total


def _acceptance(responses: Counter[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for action in sorted({a for a, _ in responses}):
        accepted = responses[action, "accepted"]
        answered = sum(responses[action, o] for o in ANSWERED)
        out[action] = {
            "impressions": responses[action, "impression"],
            "accepted": accepted,
            "answered": answered,
            "rate": round(accepted / answered, 4) if answered else None,
        }
    return out


def cmo_figures(out: Outputs) -> dict[str, Any]:
    """Return the CMO's figures."""
    by_action: Counter[tuple[str, str]] = Counter((n["action"], n["channel"]) for n in out.nba)
    held = _summed(out, "suppressions", ("reason", "action"))
    reasons: Counter[str] = Counter()
    for (reason, _), n in held.items():
        reasons[reason] += n
    responses = _summed(out, "responses", ("action", "outcome"))
    accepted = sum(n for (_, o), n in responses.items() if o == "accepted")
    answered = sum(n for (_, o), n in responses.items() if o in ANSWERED)
    final = _final_profiles(out.profiles)
    stages: Counter[str] = Counter(p.get("journey_stage") or "none" for p in final)
    sentiment: dict[str, list[float]] = defaultdict(list)
    for p in final:
        for stage, value in p.get("sentiment_by_stage", {}).items():
            sentiment[stage].append(float(value))
    return {
        "nba_by_action_channel": {f"{a} / {c}": n for (a, c), n in sorted(by_action.items())},
        "nbas": len(out.nba),
        "suppressed": sum(s["suppressed_total"] for s in out.decisions),
        "suppression_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "suppressions": {f"{r} / {a}": n for (r, a), n in sorted(held.items())},
        "responses": sum(responses.values()),
        "acceptance_rate": round(accepted / answered, 4) if answered else None,
        "acceptance": _acceptance(responses),
        "late_items": sum(s["late_items"] for s in out.decisions),
        "funnel": dict(sorted(stages.items())),
        "sentiment_by_stage": {s: round(sum(v) / len(v), 4) for s, v in sorted(sentiment.items())},
    }


def figures(out: Outputs) -> dict[str, Any]:
    """Every figure of the report: ``{"cx": ..., "ceo": ..., "cmo": ...}``."""
    cx = cx_figures(out)
    return {"cx": cx, "ceo": ceo_figures(out, cx["nps"]), "cmo": cmo_figures(out)}
