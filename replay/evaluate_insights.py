"""Score the insights outputs against the world's planted NPS drivers and pockets.

* Drivers: over the overall ``KeyDrivers`` records of the longest window, each
  driver's answer-weighted mean relative weight for NPS; ``spearman`` is the
  rank correlation of those means with the planted effects' sizes over the
  planted drivers, ``top`` the recovered top drivers among all.
* Pockets: the cells of ``nps_pocket`` alerts of the planted kinds against the
  planted cells, as cells (a cell found in any window counts once):
  ``precision`` = found and planted / found, ``recall`` = planted and found /
  planted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

Rank = Callable[[list[float], list[float]], float | None]

_MIN_RANK_POINTS = 3


def _seconds(record: dict[str, Any]) -> float:
    start = datetime.fromisoformat(record["window_start"])
    return (datetime.fromisoformat(record["window_end"]) - start).total_seconds()


def recovered_weights(records: list[dict[str, Any]]) -> dict[str, float]:
    """Answer-weighted mean NPS weight per driver over the longest window's overall records."""
    overall = [r for r in records if r["touchpoint"] is None and r["drivers"]]
    if not overall:
        return {}
    longest = max(_seconds(r) for r in overall)
    chosen = [r for r in overall if _seconds(r) == longest]
    total = sum(r["answers"] for r in chosen)
    sums: dict[str, float] = {}
    for r in chosen:
        for d in r["drivers"]:
            sums[d["driver"]] = sums.get(d["driver"], 0.0) + d["weight"] * r["answers"]
    return {name: value / total for name, value in sums.items()}


def insights_scores(
    records: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    truth: dict[str, Any],
    spearman: Rank,
) -> dict[str, Any]:
    """Return the ``insights`` entry of ``cxstream evaluate`` (see the module notes)."""
    planted = truth.get("nps_drivers", {}).get("points", {})
    weights = recovered_weights(records)
    names = [n for n in planted if n in weights]
    rho = None
    if len(names) >= _MIN_RANK_POINTS:
        rho = spearman([abs(planted[n]) for n in names], [weights[n] for n in names])
    top = sorted(weights, key=lambda n: (-weights[n], n))[: len(planted)]
    cells = {(p["kind"], *p["cell"]) for p in truth.get("nps_pockets", [])}
    kinds = {c[0] for c in cells}
    found = {
        (a["evidence"]["kind"], *a["evidence"]["cell"])
        for a in alerts
        if a["kind"] == "nps_pocket" and a["evidence"]["kind"] in kinds
    }
    hits = len(found & cells)
    return {
        "drivers": {
            "recovered": {n: round(w, 6) for n, w in sorted(weights.items())},
            "spearman": rho,
            "top": top,
            "planted_in_top": sorted(set(top) & set(planted)),
        },
        "pockets": {
            "planted": len(cells),
            "found": len(found),
            "precision": round(hits / len(found), 4) if found else None,
            "recall": round(hits / len(cells), 4) if cells else None,
            "found_cells": sorted([list(c) for c in found]),
        },
    }
