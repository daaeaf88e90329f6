"""Score an offline run's outputs against a synthetic world's ground truth.

* Identity: pairwise precision, recall and F1 over the identifiers the world's
  people used (shared and junk identifiers excluded): two identifiers are a
  true pair when one person used both, a predicted pair when one profile holds
  both. Computed from a contingency table, never by listing pairs. With the
  log, ``achievable_recall`` is the recall of a resolver linking everything the
  log's events tie together (shared identifiers included: a person's email and
  crm_id seen only with the family tablet are still theirs), an upper bound on
  any resolver's recall; ``achievable_recall_without_shared`` links without the
  shared identifiers, what a resolver that never trusts them can reach.
* Dead letters: the offsets in ``dlq.jsonl`` against the injected invalid ones.
* Events: the events counted by all profiles against the distinct valid
  events of the world that carry identifiers (duplicates must not count twice).
* NPS: the touchpoints' NPS over the daily windows, rank-correlated with the
  world's hidden touchpoint quality.
* Churn AUC from the profiles' ``churn_score``, once the flow produces it.
* Households: pairwise precision, recall and F1 over people, and the shares of true
  households split and of found ones wrongly joined (:mod:`replay.evaluate_households`).
* Attribution (with the log): which person's events ended up in which customer,
  so misattribution shows. Each person's *majority customer* holds most of
  their attributed events; a customer that is the majority customer of exactly
  one person is that person's *own customer*; one that is several people's
  majority customer is *shared* and nobody's own. An event is *correct* when
  its customer is its person's own customer, *misattributed* when its customer
  is another person's own customer, a shared customer, or an unclaimed one
  where another person has most events, *split off* when it sits in an
  unclaimed fragment where its own person has most events, *unattributed*
  without a customer. Reported: the shares of correct and misattributed
  events (over attributed ones), the order amounts of misattributed events per
  currency, and the people without a customer of their own (shared majority
  customer, or nothing attributed). The per-event customer comes from
  ``attribution.jsonl`` if the run wrote one, else it is derived from the
  merges, ``identity_conflict`` alerts and final profiles; see
  :mod:`replay.attribution` for the precise rules and the check against the
  profiles' ``event_count``.

Only worlds written with identifier hashing off can be scored.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from replay.attribution import (
    LogEvent,
    attribution_scores,
    event_customers,
    read_events,
)
from replay.attribution import read_rows as _rows
from replay.evaluate_households import household_scores
from replay.evaluate_insights import insights_scores
from replay.log import read_log
from replay.world.answers import lift, nba_scores

# A rank correlation of fewer than three points is always +-1: no evidence.
_MIN_RANK_POINTS = 3


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _prf(tp: int, predicted: int, actual: int) -> dict[str, float]:
    precision = tp / predicted if predicted else 1.0
    recall = tp / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _shared(truth: dict[str, Any]) -> set[str]:
    """Return the identifiers several people used (households, junk): no one's evidence."""
    return {f"{s['type']}:{s['value']}" for s in truth["shared_identifiers"]}


def _person_of(truth: dict[str, Any], exclude: set[str] | None = None) -> dict[str, str]:
    """``"type:value"`` -> the person who used it (leaving out ``exclude``)."""
    skip = exclude or set()
    return {
        f"{id_type}:{value}": person["person_id"]
        for person in truth["customers"]
        for id_type, values in person["identifiers"].items()
        for value in values
        if f"{id_type}:{value}" not in skip
    }


Contingency = tuple[Counter[tuple[str, str]], Counter[str], Counter[str]]


def _contingency(person_of: dict[str, str], cluster_of: dict[str, str]) -> Contingency:
    """Return the (cluster, person) cells and the cluster and person sizes.

    An identifier no cluster holds is a cluster of its own.
    """
    cells: Counter[tuple[str, str]] = Counter()
    for member, person in person_of.items():
        cells[(cluster_of.get(member, "unseen:" + member), person)] += 1
    predicted: Counter[str] = Counter()
    actual: Counter[str] = Counter()
    for (cluster, person), n in cells.items():
        predicted[cluster] += n
        actual[person] += n
    return cells, predicted, actual


def _pairwise(contingency: Contingency) -> dict[str, float]:
    cells, predicted, actual = contingency
    tp = sum(_pairs(n) for n in cells.values())
    return _prf(
        tp, sum(_pairs(n) for n in predicted.values()), sum(_pairs(n) for n in actual.values())
    )


def _people_pairwise(predicted: dict[str, str], actual: dict[str, str]) -> dict[str, float]:
    """Pairwise scores of people grouped two ways (person -> predicted / true group)."""
    return _pairwise(_contingency(actual, predicted))


def identity_scores(profiles: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, Any]:
    """Pairwise precision/recall/F1 of identity resolution over identifiers."""
    customer_of = {
        f"{id_type}:{value}": profile["customer_id"]
        for profile in profiles
        for id_type, values in profile["identifiers"].items()
        for value in values
    }
    contingency = _contingency(_person_of(truth, _shared(truth)), customer_of)
    cells, predicted, actual = contingency
    clusters_per_person = Counter(person for _, person in cells)
    people_per_cluster = Counter(cluster for cluster, _ in cells)
    return {
        **_pairwise(contingency),
        "people": len(actual),
        "customers": len({c for c in predicted if not c.startswith("unseen:")}),
        "people_split": sum(1 for n in clusters_per_person.values() if n > 1),
        "customers_mixing_people": sum(1 for n in people_per_cluster.values() if n > 1),
    }


def evidence_components(log: Path | list[LogEvent], shared: set[str]) -> dict[str, str]:
    """Map each identifier to its component: identifiers that appear together are joined.

    Together means in one valid event of the log (or of its events as
    :func:`replay.attribution.read_events` gives them).

    No resolver can link identifiers that never appear together (directly or
    through others), so these components bound the achievable recall. Members
    of ``shared`` are left out (pass an empty set to use all the evidence).
    """
    events = read_events(log) if isinstance(log, Path) else log
    parent: dict[str, str] = {}

    def find(member: str) -> str:
        root = parent.setdefault(member, member)
        while root != parent[root]:
            parent[root] = parent[parent[root]]
            root = parent[root]
        return root

    for event in events:
        members = [m for m in event.members if m not in shared]
        for member in members:
            parent[find(member)] = find(members[0])
    return {member: find(member) for member in parent}


def achievable_recall(truth: dict[str, Any], components: dict[str, str]) -> float:
    """Pairwise recall of a resolver that links exactly the evidence components."""
    return _pairwise(_contingency(_person_of(truth, _shared(truth)), components))["recall"]


def dead_letter_scores(dead: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, Any]:
    """Dead-lettered offsets against the injected invalid messages."""
    injected = set(truth["invalid_offsets"])
    caught = {d["offset"] for d in dead}
    return {
        "injected": len(injected),
        "dead_letters": len(caught),
        **_prf(len(injected & caught), len(caught), len(injected)),
    }


def _auc(scores: list[tuple[float, bool]]) -> float | None:
    positives = sum(1 for _, y in scores if y)
    negatives = len(scores) - positives
    if not positives or not negatives:
        return None
    ranks = _ranks([score for score, _ in scores])  # 0-based, ties averaged
    rank_sum = sum(r + 1 for r, (_, y) in zip(ranks, scores, strict=True) if y)
    return round((rank_sum - positives * (positives + 1) / 2) / (positives * negatives), 4)


def churn_scores(profiles: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, Any]:
    """Churn AUC of the profiles' churn scores against who churned (majority person)."""
    churned = {p["person_id"]: p["churned"] for p in truth["customers"]}
    owner = _person_of(truth)
    scored = []
    for profile in profiles:
        if profile.get("churn_score") is None:
            continue
        people = Counter(
            owner[f"{t}:{v}"]
            for t, values in profile["identifiers"].items()
            for v in values
            if f"{t}:{v}" in owner
        )
        if people:
            scored.append((float(profile["churn_score"]), churned[people.most_common(1)[0][0]]))
    if not scored:
        return {"auc": None, "note": "no churn scores in the profiles yet"}
    return {"auc": _auc(scored), "scored_profiles": len(scored)}


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and values[order[j]] == values[order[i]]:
            j += 1
        for k in range(i, j):
            ranks[order[k]] = (i + j - 1) / 2
        i = j
    return ranks


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Rank correlation of two equally long lists (None when undefined).

    >>> spearman([1, 2, 3], [10, 20, 35]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    """
    if len(xs) < _MIN_RANK_POINTS:
        return None
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return round(cov / (vx * vy), 4) if vx and vy else None


def nps_scores(windows: list[dict[str, Any]], truth: dict[str, Any]) -> dict[str, Any]:
    """Touchpoint NPS from the daily windows against each touchpoint's true quality.

    Uses the latest revision of every per-touchpoint window of the longest length;
    reports the responses counted and the rank correlation of the response-weighted
    NPS per touchpoint with the world's hidden touchpoint quality.
    """
    if not windows:
        return {"windows": 0, "note": "no NPS windows in the output"}
    latest: dict[str, dict[str, Any]] = {}
    for window in windows:
        if (
            window["channel"] is None
            and window["revision"] >= latest.get(window["id"], {"revision": -1})["revision"]
        ):
            latest[window["id"]] = window
    by_len: dict[str, list[dict[str, Any]]] = {}
    for window in latest.values():
        by_len.setdefault(_length(window), []).append(window)
    longest = max(by_len, key=float)
    totals: dict[str, list[int]] = {}
    for window in by_len[longest]:
        t = totals.setdefault(window["touchpoint"], [0, 0, 0])
        t[0] += window["promoters"]
        t[1] += window["detractors"]
        t[2] += window["responses"]
    quality = {name: tp["quality"] for name, tp in truth["touchpoints"].items()}
    names = sorted(n for n in totals if n in quality and totals[n][2] > 0)
    measured = [100.0 * (totals[n][0] - totals[n][1]) / totals[n][2] for n in names]
    return {
        "windows": len(windows),
        "window_seconds": float(longest),
        "responses": sum(t[2] for t in totals.values()),
        "touchpoints": len(names),
        "rank_correlation_with_true_quality": spearman(measured, [quality[n] for n in names]),
        "nps_by_touchpoint": {n: round(m, 1) for n, m in zip(names, measured, strict=True)},
    }


def _length(window: dict[str, Any]) -> str:
    from datetime import datetime

    start = datetime.fromisoformat(window["window_start"])
    end = datetime.fromisoformat(window["window_end"])
    return str((end - start).total_seconds())


def _log_of(run: Path, log: Path | None) -> Path | None:
    """Return a closed loop's own log in ``run`` (flows.app.loop), else ``log``."""
    answered = run / "events.answered.jsonl.gz"
    return answered if answered.is_file() else log


def _nba(
    run: Path, truth: dict[str, Any], profiles: list[dict[str, Any]], log: Path | None
) -> dict[str, Any]:
    records = read_log(log) if log is not None else None
    return nba_scores(_rows(run / "nba.jsonl"), profiles, truth, records)


def evaluate(
    out_dir: Path, truth_path: Path, log: Path | None = None, baseline: Path | None = None
) -> dict[str, Any]:
    """Every score for the run in ``out_dir`` against ``truth_path``.

    With the world's ``log``, identity also reports the achievable recall, and
    ``attribution`` the event attribution (see :mod:`replay.attribution`). ``nba``:
    how the NBAs fare in the world (:func:`replay.world.answers.nba_scores`; with a
    closed loop's log, the acceptance rate); with ``baseline``, the output directory of
    a fixed-rules run on the same world (``CX_MODELS__ACCEPTANCE__ENABLED=false``), the
    lift of this run over it.
    """
    truth = orjson.loads(truth_path.read_bytes())
    profiles = _rows(out_dir / "profiles.jsonl")
    counted = sum(p["event_count"] for p in profiles)
    nps = _rows(out_dir / "nps.jsonl")
    identity = identity_scores(profiles, truth)
    attribution: dict[str, Any] = {"note": "needs the world's log (--log)"}
    if log is not None:
        events = read_events(log)
        components = evidence_components(events, set())
        identity["achievable_recall"] = achievable_recall(truth, components)
        components = evidence_components(events, _shared(truth))
        identity["achievable_recall_without_shared"] = achievable_recall(truth, components)
        customer_of, found = event_customers(events, out_dir)
        attribution = {**attribution_scores(truth, customer_of, events), **found}
    nba = _nba(out_dir, truth, profiles, _log_of(out_dir, log))
    if baseline is not None:
        fixed = _nba(baseline, truth, _rows(baseline / "profiles.jsonl"), _log_of(baseline, log))
        nba = {**nba, "fixed_rules": fixed, "lift": lift(nba, fixed)}
    return {
        "nba": nba,
        "identity": identity,
        "attribution": attribution,
        "dead_letters": dead_letter_scores(_rows(out_dir / "dlq.jsonl"), truth),
        "events": {"counted_by_profiles": counted, "distinct_valid": truth["stats"]["events"]},
        "households": household_scores(
            profiles, _person_of(truth, _shared(truth)), truth, _people_pairwise
        ),
        "churn": churn_scores(profiles, truth),
        "nps": nps_scores(nps, truth),
        "insights": insights_scores(
            _rows(out_dir / "insights.jsonl"), _rows(out_dir / "alerts.jsonl"), truth, spearman
        ),
    }
