"""Loading a catalogue: the default one, and every kind of mistake with its file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flows.nba.catalogue import DEFAULT_CATALOGUE, CatalogueError, load_catalogue
from flows.nba.context import FIELDS
from tests.flows.nba.conftest import SERVICE, action, context

Write = Callable[[str], Path]


def test_the_default_catalogue_closes_every_feedback_loop() -> None:
    cat = load_catalogue(None)
    assert cat.path == str(DEFAULT_CATALOGUE)
    ids = {a.id: a for a in cat.actions}
    assert {"service_recovery", "promoter_referral", "passive_feedback", "retention_call"} <= set(
        ids
    )
    assert {a.action_class for a in cat.actions} == {"service", "retention", "marketing", "sales"}
    assert ids["service_recovery"].consent is None
    assert ids["promoter_referral"].consent == "marketing"
    assert ids["retention_call"].propensity == "churn"
    assert any(c.field == "churn_ready" for c in ids["retention_call"].when)
    assert cat.lever("marketing") == 0.6 and cat.lever("service") == 1.0


def test_a_new_action_needs_only_the_file(write_catalogue: Write) -> None:
    text = action("birthday", when='["stage == loyalty"]').replace("propensity = 1.0\n", "")
    path = write_catalogue(SERVICE + text)
    cat = load_catalogue(path)
    assert [a.id for a in cat.actions] == ["call_back", "birthday"]
    birthday = cat.actions[1]
    assert birthday.consent == "marketing" and birthday.propensity == "category_propensity"
    assert birthday.cooldown_ms == 24 * 3_600_000 and birthday.expiry_ms == 24 * 3_600_000
    assert cat.lever("sales") == 1.0  # a class without a lever weighs 1


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("[levers]\nservice = 1.0\nservice = 2.0\n", 3, "invalid TOML"),
        ('[[action]]\nid = "a"\nvalue = \n', 3, "invalid TOML"),
        (SERVICE.replace("nps <= 6", "spend > 6"), 7, "unknown field 'spend'"),
        (SERVICE.replace("nps <= 6", "nps ~ 6"), 7, "not 'field operator value'"),
        (SERVICE.replace("nps <= 6", "nps <= six"), 7, "nps is a number; 'six' is not"),
        (SERVICE.replace("nps <= 6", "stage > 3"), 7, "'>' compares numbers; stage is text"),
        (SERVICE.replace('"service"', '"loyalty"'), 4, "class 'loyalty' is not one of"),
        (SERVICE.replace("value = 100", "value = -1"), 6, "value must be a number >= 0"),
        (SERVICE.replace("value = 100", "value = 100\npriority = 3"), 7, "unknown key 'priority'"),
        (SERVICE.replace('channel = "call_center"\n', ""), 2, "[[action]] needs 'channel'"),
        (SERVICE + SERVICE, 12, "duplicate action id 'call_back'"),
        (SERVICE.replace("NPS {nps}", "NPS {score}"), 9, "unknown field(s): score"),
        (SERVICE.replace("NPS {nps}", "NPS {nps:%%}"), 9, "message template"),
        (SERVICE.replace("cooldown_hours = 0", 'consent = "marketing"'), 8, "always allowed"),
        (SERVICE.replace("value = 100", "value = 100\npropensity = 'stage'"), 7, "propensity"),
        ("[levers]\nvip = 2.0\n" + SERVICE, 2, "unknown action class 'vip'"),
        ("[levers]\nservice = 1.0\n", 1, "no actions"),
        (SERVICE.replace('["nps <= 6"]', "[]"), 7, "when must be a non-empty list"),
    ],
)
def test_mistakes_name_the_file_line_and_reason(
    write_catalogue: Write, text: str, line: int, reason: str
) -> None:
    path = write_catalogue(text)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    error = caught.value
    assert str(error).startswith(f"{path}:{line}: "), str(error)
    assert reason in error.reason
    assert (error.path, error.line) == (str(path), line)


def test_a_missing_file_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"nowhere\.toml:0: cannot read the catalogue"):
        load_catalogue(tmp_path / "nowhere.toml")


def test_disabled_actions_are_checked_but_left_out(write_catalogue: Write) -> None:
    path = write_catalogue(SERVICE + action("quiet", enabled="false").replace('"false"', "false"))
    assert [a.id for a in load_catalogue(path).actions] == ["call_back"]


def test_messages_render_unknown_values_as_na_and_never_raise(write_catalogue: Write) -> None:
    text = SERVICE.replace(
        '"call {customer_id}: NPS {nps}"',
        '"NPS {nps}, churn {churn:.0%}, value {lifetime_value:.2f}"',
    )
    call_back = load_catalogue(write_catalogue(text)).actions[0]
    assert call_back.render(context(nps=3, lifetime_value=12.5)) == (
        "NPS 3, churn n/a, value 12.50"
    )
    # a value of an unexpected kind falls back to its plain text
    assert call_back.render(context(nps=3, churn="high", lifetime_value=1)) == (
        "NPS 3, churn high, value 1.00"
    )


def test_every_context_field_is_documented() -> None:
    assert set(context()) == set(FIELDS)
    assert all(kind in ("number", "text", "bool") and doc for kind, doc in FIELDS.values())


def test_compiled_rules_answer_as_the_conditions_do() -> None:
    import random

    from flows.nba.catalogue import load_catalogue
    from flows.nba.conditions import all_of

    catalogue = load_catalogue(None)
    rng = random.Random(4)
    stages = ["consideration", "purchase", "usage", "loyalty", "service", "churned", None]
    for _ in range(2000):
        ctx = {
            "nps": rng.choice([None, *range(11)]),
            "nps_group": rng.choice([None, "passive", "promoter", "detractor"]),
            "churn_ready": rng.choice([None, True, False]),
            "churn": rng.choice([None, rng.random()]),
            "stage": rng.choice(stages),
            "sentiment_short": rng.choice([None, rng.uniform(-1, 1)]),
            "sentiment": rng.choice([None, rng.uniform(-1, 1)]),
            "category_propensity": rng.choice([None, rng.random()]),
            "orders": rng.choice([None, 0, 1, 2]),
            "days_since_order": rng.choice([None, rng.random() * 60]),
        }
        for rule in catalogue.actions:
            expected = all(c.test(ctx) for c in rule.when)
            assert all_of(rule.when)(ctx) is expected
            assert [c.compiled()(ctx) for c in rule.when] == [c.test(ctx) for c in rule.when]
