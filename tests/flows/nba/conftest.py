"""Helpers for the NBA tests: catalogues written to files, contexts, journeys with a decider."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.nba.context import NO_JOURNEY, Trigger, build_context
from flows.records import Context
from online_models.features import CustomerFeatures

SERVICE = """
[[action]]
id = "call_back"
class = "service"
channel = "call_center"
value = 100
when = ["nps <= 6"]
cooldown_hours = 0
message = "call {customer_id}: NPS {nps}"
"""


def action(
    action_id: str,
    klass: str = "marketing",
    when: str = '["nps >= 0"]',
    value: float = 10,
    **extra: Any,
) -> str:
    """One [[action]] table (propensity 1 unless given); ``extra`` keys are TOML values."""
    extra.setdefault("propensity", 1.0)
    lines = [
        "[[action]]",
        f'id = "{action_id}"',
        f'class = "{klass}"',
        'channel = "email"',
        f"value = {value}",
        f"when = {when}",
        f'message = "{action_id} for {{customer_id}}"',
    ]
    for key, val in extra.items():
        lines.append(f'{key} = "{val}"' if isinstance(val, str) else f"{key} = {val}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_catalogue(tmp_path: Path) -> Callable[[str], Path]:
    counter = iter(range(1000))

    def write(text: str) -> Path:
        path = tmp_path / f"catalogue-{next(counter)}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def context(**fields: Any) -> Context:
    """A decision context for customer c-1 after a survey event, with ``fields`` set."""
    trigger = Trigger("c-1", "cx.survey.nps", channel="survey", touchpoint="store.till")
    ctx = build_context(trigger, NO_JOURNEY, CustomerFeatures())
    ctx.update(fields)
    return ctx
