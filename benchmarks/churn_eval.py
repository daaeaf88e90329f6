"""Churn models on a synthetic world: prequential quality, an offline reference, cost per event.

Replays a generated world (``replay.synthetic.generate_world``) in event order
through :class:`~online_models.features.CustomerFeatures` and
:class:`~online_models.churn.ChurnEngine`, the way the journey step calls them
(one feature state per person, one engine), and reports

* the engine's prequential churn AUC (``river.metrics.ROCAUC``), log loss and
  expected calibration error over the predictions it made once warm, plus the
  exact (rank) AUC of the same predictions;
* as the upper reference, an offline L2 logistic regression (numpy/scipy, on
  standardised features) trained on the same snapshots and labels with a time
  split: trained on the snapshots taken before ``--split-day``, tested on those
  taken after it; the online model's AUC on that same test set is reported
  next to it. Both sets hold only snapshots whose horizon the stream covers
  (later ones have only their positives known);
* the cost per event, with ``time.perf_counter``: of the engine's ``observe``
  and ``score`` (predict, label bookkeeping, learn, evaluation), of the
  feature building on top, and of the bare model's ``predict_proba_one`` and
  ``learn_one``.

Events are mapped to people with the truth's ``event_ids`` (the flow's identity
resolution is not part of this benchmark); sentiment and journey stage come
from the flow's own VADER scorer and stage machine. Usage::

    python -m benchmarks.churn_eval [--customers 10000] [--days 90] [--seed 42]

Results go to ``benchmarks/results/churn.json``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError
from scipy import optimize  # type: ignore[import-untyped]

from flows.step_settings import DEFAULT_STAGE_MAP
from flows.steps.sentiment import VaderScorer
from flows.steps.stages import mapped_stage, next_stage
from online_models.churn import ChurnEngine
from online_models.features import CustomerFeatures
from online_models.labels import Labelled
from online_models.persistence import export_model
from online_models.settings import DAY_MS, ModelSettings
from replay.synthetic import generate_world
from schemas.envelope import InteractionEvent
from schemas.outputs import Alert
from schemas.vocabulary import NPS_PROMOTER_MIN

RESULTS = Path(__file__).parent / "results" / "churn.json"


@dataclass(frozen=True, slots=True)
class Step:
    """One event of one person, with what the journey step would have worked out."""

    person_id: str
    event: InteractionEvent
    sentiment: float | None
    stage: str | None


def world_steps(customers: int, days: int, seed: int, progress: bool = False) -> list[Step]:
    """Return the world's distinct valid events in event order, with person, sentiment and stage."""
    world = generate_world(customers, days, seed, _progress("generate") if progress else None)
    truth = world.truth()
    person_of = {e: p["person_id"] for p in truth["customers"] for e in p["event_ids"]}
    seen: set[str] = set()
    events: list[tuple[int, int | None, InteractionEvent]] = []
    for message in world.messages():
        try:
            event = InteractionEvent.model_validate_json(message.value or b"")
        except ValidationError:
            continue
        if event.id in seen or event.id not in person_of:
            continue
        seen.add(event.id)
        events.append((event.epoch_ms, message.offset, event))
    events.sort(key=lambda item: (item[0], item[1] or 0))
    scorer, cache = VaderScorer(), dict[str, float | None]()
    stages: dict[str, tuple[str | None, str | None]] = {}
    steps = []
    for _, _, event in events:
        data = event.data
        sentiment = data.sentiment
        if sentiment is None and data.text:
            if data.text not in cache:
                cache[data.text] = scorer.score(data.text)
            sentiment = cache[data.text]
        person = person_of[event.id]
        stage, before = stages.get(person, (None, None))
        target = mapped_stage(event.type, data.journey_stage, DEFAULT_STAGE_MAP)
        if target == "loyalty" and data.nps is not None and data.nps < NPS_PROMOTER_MIN:
            target = None  # as the journey step: only promoters reach loyalty by survey
        new = next_stage(stage, before, target)
        stages[person] = (new, stage if new == "service" and stage != "service" else before)
        steps.append(Step(person, event, None if sentiment is None else float(sentiment), new))
    return steps


@dataclass(slots=True)
class Replay:
    """What one replay through the engine gave."""

    engine: ChurnEngine
    labelled: list[Labelled] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    engine_seconds: float = 0.0
    total_seconds: float = 0.0


def replay(steps: list[Step], settings: ModelSettings | None = None) -> Replay:
    """Run ``steps`` through per-person features and one engine, timing each part."""
    settings = settings or ModelSettings()
    out = Replay(ChurnEngine(settings))
    out.engine.on_label = out.labelled.append
    engine, conf, clock = out.engine, settings.features, time.perf_counter
    people: dict[str, CustomerFeatures] = {}
    engine_s = total_s = 0.0
    for step in steps:
        event = step.event
        t0 = clock()
        features = people.get(step.person_id)
        if features is None:
            features = people[step.person_id] = CustomerFeatures()
        features.update(event, step.sentiment, step.stage, conf)
        x = features.vector(event.epoch_ms, conf)
        t1 = clock()
        engine.observe(step.person_id, event)
        score = engine.score(step.person_id, event, x)
        t2 = clock()
        engine_s += t2 - t1
        total_s += t2 - t0
        out.scores.append(score)
        alert = engine.risk_alert(step.person_id, event, features, score)  # as step() does
        if alert is not None:
            out.alerts.append(alert)
    out.engine_seconds, out.total_seconds = engine_s, total_s
    return out


def exact_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Rank AUC (ties count half)."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = float(ranks[labels.astype(bool)].sum())
    return round((rank_sum - positives * (positives + 1) / 2) / (positives * negatives), 4)


def _fit_logreg(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """L2 logistic regression (intercept unpenalised) by L-BFGS; returns [w..., b]."""
    n = len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        # log(1 + e^z) - y z, stably
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) / n + 0.5 * l2 * float(w @ w)
        p = 1.0 / (1.0 + np.exp(-z))
        grad_w = x.T @ (p - y) / n + l2 * w
        return value, np.append(grad_w, np.sum(p - y) / n)

    result = optimize.minimize(
        loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500}
    )
    return np.asarray(result.x)


def offline_reference(
    labelled: list[Labelled], split_ms: int, complete_ms: int, l2: float = 1e-3
) -> dict[str, Any]:
    """Batch logistic regression, time split at ``split_ms``; snapshots scored by ``complete_ms``.

    Also the online model's exact AUC on the same test set (its scores at scoring time).
    """
    rows = [d for d in labelled if d.snapshot.scored_ms <= complete_ms]
    train = [d for d in rows if d.snapshot.scored_ms < split_ms]
    test = [d for d in rows if d.snapshot.scored_ms >= split_ms]
    keys = train[0].snapshot.keys

    def matrix(items: list[Labelled]) -> tuple[np.ndarray, np.ndarray]:
        x = np.array([[d.snapshot.features().get(k, 0.0) for k in keys] for d in items])
        return x, np.array([float(d.label) for d in items])

    x_train, y_train = matrix(train)
    x_test, y_test = matrix(test)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    theta = _fit_logreg((x_train - mean) / std, y_train, l2)
    z = ((x_test - mean) / std) @ theta[:-1] + theta[-1]
    p = 1.0 / (1.0 + np.exp(-z))
    online = np.array([d.snapshot.score for d in test])
    eps = 1e-12
    log_loss = -np.mean(y_test * np.log(p + eps) + (1 - y_test) * np.log(1 - p + eps))
    return {
        "train": {"snapshots": len(train), "positives": int(y_train.sum())},
        "test": {"snapshots": len(test), "positives": int(y_test.sum())},
        "offline_auc": exact_auc(p, y_test),
        "offline_log_loss": round(float(log_loss), 4),
        "online_auc_same_test": exact_auc(online, y_test),
        "l2": l2,
    }


def model_costs(run: Replay, n: int = 20_000) -> dict[str, float]:
    """Time a fresh default model's predict_proba_one and learn_one, in microseconds.

    Both run on the replay's own snapshots.
    """
    model = ChurnEngine(run.engine.settings).model
    items = run.labelled[:n]
    xs = [d.snapshot.features() for d in items]
    clock = time.perf_counter
    t0 = clock()
    for x, d in zip(xs, items, strict=True):
        model.learn_one(x, d.label)
    t1 = clock()
    for x in xs:
        model.predict_proba_one(x)
    t2 = clock()
    return {
        "learn_one_us": round((t1 - t0) / len(xs) * 1e6, 2),
        "predict_proba_one_us": round((t2 - t1) / len(xs) * 1e6, 2),
    }


def evaluate(steps: list[Step], settings: ModelSettings, split_day: float) -> dict[str, Any]:
    """Every figure of the report for ``steps``."""
    run = replay(steps, settings)
    engine, conf = run.engine, settings.churn
    metrics = engine.metrics()
    warm = [d for d in run.labelled if d.snapshot.warm]
    start = steps[0].event.epoch_ms
    end = steps[-1].event.epoch_ms
    complete = end - round((conf.horizon_days + conf.label_grace_hours / 24) * DAY_MS)
    n = len(steps)
    with tempfile.TemporaryDirectory() as tmp:
        header = export_model(engine, Path(tmp) / "churn.model")
    return {
        "events": n,
        "people": len({s.person_id for s in steps}),
        "model": conf.model,
        "horizon_days": conf.horizon_days,
        "prequential": {
            **{k: v for k, v in metrics["prequential"].items() if k != "calibration"},
            "exact_auc": exact_auc(
                np.array([d.snapshot.score for d in warm]), np.array([d.label for d in warm])
            ),
            "calibration": metrics["prequential"]["calibration"],
        },
        "engine": {
            **{k: v for k, v in metrics.items() if k != "prequential"},
            "exported_bytes": header["bytes"],
        },
        "offline_reference": {
            "split_day": split_day,
            "complete_until_day": round((complete - start) / DAY_MS, 2),
            **offline_reference(run.labelled, start + round(split_day * DAY_MS), complete),
        },
        "cost_us_per_event": {
            "engine_observe_and_score": round(run.engine_seconds / n * 1e6, 2),
            "with_feature_building": round(run.total_seconds / n * 1e6, 2),
            "snapshots_learnt_per_event": round(engine.learnt / n, 4),
            "model_alone": model_costs(run),
        },
        "churn_risk_alerts": risk_alert_precision(run, steps),
    }


def risk_alert_precision(run: Replay, steps: list[Step]) -> dict[str, Any]:
    """Count the churn_risk alerts, and measure how many came true.

    That is the share of the alerts old enough to judge that were followed by the
    person's churn within the horizon.
    """
    conf = run.engine.settings.churn
    horizon = round(conf.horizon_days * DAY_MS)
    churned = {s.person_id: s.event.epoch_ms for s in steps if s.event.type in conf.churn_types}
    end = steps[-1].event.epoch_ms
    judged = [a for a in run.alerts if int(a.time.timestamp() * 1000) + horizon <= end]
    hits = 0
    for alert in judged:
        at = int(alert.time.timestamp() * 1000)
        churn = churned.get(alert.customer_id or "")
        hits += churn is not None and at <= churn <= at + horizon
    return {
        "threshold": conf.risk_threshold,
        "alerts": len(run.alerts),
        "judged": len(judged),
        "followed_by_churn": round(hits / len(judged), 4) if judged else None,
    }


def _progress(label: str) -> Any:
    def report(done: int) -> None:
        print(f"\r{label}: {done} customers", end="", file=sys.stderr, flush=True)

    return report


def main() -> None:
    """Run the churn evaluation from the command line and write its report."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default="logreg")
    parser.add_argument("--split-day", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    started = time.perf_counter()
    steps = world_steps(args.customers, args.days, args.seed, progress=True)
    print(f"\n{len(steps)} events in event order ({time.perf_counter() - started:.1f} s)")
    settings = ModelSettings(seed=args.seed, churn={"model": args.model})
    results: dict[str, Any] = {
        "world": {"customers": args.customers, "days": args.days, "seed": args.seed},
        "machine": platform.platform(),
        "python": platform.python_version(),
        **evaluate(steps, settings, args.split_day),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {args.out} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
