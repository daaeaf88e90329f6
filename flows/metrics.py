"""Prometheus metrics: every series cxstream exports, in one place.

Labels are bounded vocabularies (step, channel, type family, reason, kind, op, action,
model), never a customer. Open input vocabularies are folded into closed ones before
they become label values: a channel outside :data:`~schemas.envelope.KNOWN_CHANNELS`
is ``other``, and an event type is reduced to its *family* (see :func:`type_family`).

Timing the flow (steps, Redis round trips, end-to-end latency) is in :mod:`flows.timing`.

Series of the closed vocabularies are created at import with value 0, so a
counter's first increment is seen by ``rate()`` and "no events" alerts have a
series to look at.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any, get_args

from prometheus_client import Counter, Gauge, Histogram

from schemas.envelope import KNOWN_CHANNELS
from schemas.outputs import AlertKind, DeadLetterReason
from schemas.records import OUTPUT_KINDS

OTHER = "other"

# ---------------------------------------------------------------- vocabularies

#: Nouns of ``cx.<channel>.<noun>.<verb>`` event types that get their own label value.
KNOWN_TYPE_FAMILIES: frozenset[str] = frozenset(
    {
        "account", "ad", "app", "call", "cart", "case", "checkout", "complaint", "consent",
        "csat", "delivery", "email", "interaction", "login", "loyalty", "message", "nps",
        "order", "page", "payment", "privacy", "product", "referral", "refund", "return",
        "review", "screen", "search", "session", "subscription", "survey", "ticket",
    }
)  # fmt: skip
#: ``reason`` values of cx_dead_letters_total: every dead-letter reason
#: (schemas.outputs.DeadLetterReason).
DEAD_LETTER_REASONS: tuple[str, ...] = get_args(DeadLetterReason)
#: ``kind`` values of cx_alerts_total: every alert kind (schemas.outputs.AlertKind).
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
#: ``outcome`` values of cx_identity_resolutions_total.
RESOLUTION_OUTCOMES: tuple[str, ...] = ("created", "known")


def channel_label(channel: str) -> str:
    """Return the channel, or ``other`` outside the known vocabulary.

    >>> channel_label("chat"), channel_label("carrier-pigeon")
    ('chat', 'other')
    """
    return channel if channel in KNOWN_CHANNELS else OTHER


@lru_cache(maxsize=4096)
def type_family(event_type: str) -> str:
    """Return the family of an event type: its first known noun, else ``other``.

    A leading channel segment is looked at last, so ``cx.email.opened`` is ``email``
    while ``cx.email.consent.updated`` is ``consent``.

    >>> [type_family(t) for t in ("cx.web.page.viewed", "cx.survey.nps", "cx.order.placed")]
    ['page', 'nps', 'order']
    >>> type_family("cx.email.opened"), type_family("cx.zeppelin.boarded")
    ('email', 'other')
    """
    parts = event_type.lower().split(".", 4)[:4]
    if parts and parts[0] == "cx":
        parts = parts[1:]
    if len(parts) > 1 and parts[0] in KNOWN_CHANNELS:
        parts = [*parts[1:], parts[0]]
    for part in parts:
        if part in KNOWN_TYPE_FAMILIES:
            return part
    return OTHER


# ---------------------------------------------------------------- counters of the flow

EVENTS_IN = Counter(
    "cx_events_total",
    "Valid interaction events decoded, by channel (unknown channels count as 'other').",
    ["channel"],
)
EVENTS_BY_TYPE = Counter(
    "cx_events_by_type_total",
    "Valid interaction events decoded, by channel and type family ('other' when unknown).",
    ["channel", "family"],
)
DEAD_LETTERS = Counter(
    "cx_dead_letters_total", "Input messages sent to the dead-letter topic, by reason.", ["reason"]
)
DUPLICATES = Counter("cx_duplicates_dropped_total", "Events dropped because their id was seen.")
OUTPUTS = Counter("cx_outputs_total", "Output records written, by kind.", ["kind"])
ANONYMOUS = Counter(
    "cx_anonymous_events_total",
    "Valid events without a customer: no identifier, or only shared ones (kiosks).",
)
RESOLUTIONS = Counter(
    "cx_identity_resolutions_total", "Events resolved to a customer, by outcome.", ["outcome"]
)
MERGES = Counter("cx_identity_merges_total", "Customers merged into another.")
IDENTITY_CONFLICTS = Counter(
    "cx_identity_conflicts_total", "Links or merges refused by identifier limits."
)
ERASURES = Counter("cx_identity_erasures_total", "Customers erased on request.")
SENTIMENT_FAILURES = Counter("cx_sentiment_failures_total", "Texts the sentiment scorer failed on.")
ALERTS = Counter("cx_alerts_total", "Alerts raised, by kind.", ["kind"])
NBA = Counter(
    "cx_nba_total", "Next-best actions emitted, by action id (from the catalogue).", ["action"]
)
NBA_SUPPRESSED = Counter(
    "cx_nba_suppressed_total",
    "Decisions not sent, by reason (consent, contact policy, arbitration, ...).",
    ["reason"],
)
# the adaptive acceptance model of NBAs (online_models.acceptance), per catalogue action
NBA_RESPONSES = Counter(
    "cx_nba_responses_total",
    "Responses to NBAs learnt from, by action and outcome (no_response: timed out).",
    ["action", "outcome"],
)
NBA_ACCEPTANCE = Gauge(
    "cx_nba_acceptance_rate", "Accepted share of the answered NBAs, by action.", ["action"]
)
NBA_MODEL_AUC = Gauge(
    "cx_nba_model_auc", "Prequential ROC AUC of the acceptance model, by action.", ["action"]
)
NBA_MODEL_ANSWERS = Gauge(
    "cx_nba_model_responses", "Answers (labels) the acceptance model learnt, by action.", ["action"]
)
MODEL_AUC = Gauge("cx_model_auc", "Online ROC AUC of a model (progressive validation).", ["model"])
MODEL_LOG_LOSS = Gauge("cx_model_log_loss", "Online log loss of a model.", ["model"])

# ---------------------------------------------------------------- latency

STEP_SECONDS = Histogram(
    "cx_step_seconds",
    "Time spent in a flow step, per call: one batch (or one key's batch in stateful steps).",
    ["step"],
    buckets=(
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
        0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ),
)  # fmt: skip
STEP_ITEMS = Counter("cx_step_items_total", "Items handed to a timed flow step.", ["step"])
E2E_LATENCY = Histogram(
    "cx_e2e_latency_seconds",
    "Kafka append timestamp of the input to its output being produced.",
    buckets=(
        0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5,
        1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
    ),
)  # fmt: skip
REDIS_CALLS = Counter("cx_redis_calls_total", "Redis round trips, by operation.", ["op"])
REDIS_ERRORS = Counter("cx_redis_errors_total", "Redis round trips that raised, by op.", ["op"])
REDIS_SECONDS = Histogram(
    "cx_redis_seconds",
    "Latency of one Redis round trip (a batch script call), by operation.",
    ["op"],
    buckets=(
        0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
        0.1, 0.25, 0.5, 1.0, 2.5,
    ),
)  # fmt: skip
STORE_RETRIES = Counter(
    "cx_store_retries_total", "Profile-store calls retried while Redis was unreachable.", ["op"]
)
STORE_AVAILABLE = Gauge(
    "cx_store_available", "0 while profile-store calls are failing and being retried, else 1."
)
STORE_AVAILABLE.set(1)

# ---------------------------------------------------------------- build info


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


BUILD_INFO = Gauge(
    "cx_build_info", "Always 1; labels say what is running.", ["version", "python", "bytewax"]
)
BUILD_INFO.labels(_version("cxstream"), platform.python_version(), _version("bytewax")).set(1)

for _channel in (*sorted(KNOWN_CHANNELS), OTHER):
    EVENTS_IN.labels(_channel)
for _reason in DEAD_LETTER_REASONS:
    DEAD_LETTERS.labels(_reason)
for _kind in OUTPUT_KINDS:
    OUTPUTS.labels(_kind)
for _kind in ALERT_KINDS:
    ALERTS.labels(_kind)
for _outcome in RESOLUTION_OUTCOMES:
    RESOLUTIONS.labels(_outcome)

# ---------------------------------------------------------------- helpers

_event_children: dict[tuple[str, str], tuple[Any, Any]] = {}
_raw_children: dict[tuple[str, str], tuple[Any, Any]] = {}
_MAX_RAW_CHILDREN = 4096
_output_incs: dict[str, Any] = {}


def count_outputs(kind: str, n: int) -> None:
    """Count ``n`` output records of ``kind`` in cx_outputs_total (the sinks' write hook)."""
    inc = _output_incs.get(kind)
    if inc is None:
        inc = _output_incs[kind] = OUTPUTS.labels(kind).inc
    inc(n)


_alert_incs: dict[str, Any] = {}


def count_alert(kind: str) -> None:
    """Count one alert of ``kind`` in cx_alerts_total (label children cached)."""
    inc = _alert_incs.get(kind)
    if inc is None:
        inc = _alert_incs[kind] = ALERTS.labels(kind).inc
    inc()


def count_event(channel: str, event_type: str, n: int = 1) -> None:
    """Count ``n`` valid events in cx_events_total and cx_events_by_type_total.

    Label children are cached by (channel, type) and by (channel label, family): at
    most ``(len(KNOWN_CHANNELS) + 1) * (len(KNOWN_TYPE_FAMILIES) + 1)`` children, and a
    bounded number of raw pairs (the cache of raw pairs is cleared when full).
    """
    incs = _raw_children.get((channel, event_type))
    if incs is None:
        key = (channel_label(channel), type_family(event_type))
        children = _event_children.get(key)
        if children is None:
            children = (EVENTS_IN.labels(key[0]), EVENTS_BY_TYPE.labels(*key))
            _event_children[key] = children
        if len(_raw_children) >= _MAX_RAW_CHILDREN:
            _raw_children.clear()
        incs = (children[0].inc, children[1].inc)
        _raw_children[channel, event_type] = incs
    incs[0](n)
    incs[1](n)
