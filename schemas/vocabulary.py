"""The shared CX vocabularies, in a fixed order (feature vectors and reports rely on it)."""

from __future__ import annotations

CHANNELS: tuple[str, ...] = (
    "web",
    "app",
    "call_center",
    "email",
    "chat",
    "social",
    "store",
    "survey",
    "service_desk",
)

STAGES: tuple[str, ...] = (
    "awareness",
    "consideration",
    "purchase",
    "onboarding",
    "usage",
    "service",
    "loyalty",
    "churned",
)
