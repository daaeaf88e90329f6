"""Prometheus metrics: every series cxstream exports, in one place.

Labels are bounded vocabularies (step, channel, reason, kind), never a customer.
"""

from __future__ import annotations

from prometheus_client import Counter

EVENTS_IN = Counter(
    "cx_events_total",
    "Valid interaction events decoded, by channel (unknown channels count as 'other').",
    ["channel"],
)
DEAD_LETTERS = Counter(
    "cx_dead_letters_total", "Input messages sent to the dead-letter topic, by reason.", ["reason"]
)
DUPLICATES = Counter("cx_duplicates_dropped_total", "Events dropped because their id was seen.")
OUTPUTS = Counter("cx_outputs_total", "Output records written, by kind.", ["kind"])
ANONYMOUS = Counter(
    "cx_anonymous_events_total", "Valid events without any identifier (no customer to update)."
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
