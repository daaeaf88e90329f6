"""`cxstream profile get` and `cxstream erase` against the real Redis."""

from __future__ import annotations

import orjson
import pytest

from flows.app.cli import main
from flows.app.stores import make_store
from flows.settings import RedisSettings, Settings
from tests.conftest import make_event, raw, run_flow

pytestmark = pytest.mark.integration


def test_profile_get_and_erase(
    redis_url: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"test:{topic_prefix}"
    settings = Settings(redis=RedisSettings(url=redis_url, prefix=prefix))
    store = make_store(settings, default="redis")
    events = [
        make_event(1, identifiers={"email": "Ann@Example.com", "crm_id": "C-7"}, amount=12.0),
        make_event(2, identifiers={"phone": "+1 415 555 0100", "crm_id": "C-7"}),
    ]
    run_flow([raw(e, offset=i) for i, e in enumerate(events)], settings, store)
    monkeypatch.setenv("CX_REDIS__URL", redis_url)
    monkeypatch.setenv("CX_REDIS__PREFIX", prefix)

    assert main(["profile", "get", "phone:(415) 555-0100"]) == 0
    profile = orjson.loads(capsys.readouterr().out)
    assert profile["event_count"] == 2 and profile["lifetime_value"] == 12.0
    assert profile["identifiers"]["email"] == ["ann@example.com"]

    assert main(["erase", "email:ann@example.com"]) == 0
    assert "3 identifier links" in capsys.readouterr().out
    assert main(["profile", "get", "crm_id:C-7"]) == 1
    assert "no customer with crm_id:C-7" in capsys.readouterr().err
    assert main(["profile", "get", "nonsense"]) == 2
    assert "TYPE:VALUE" in capsys.readouterr().err


def test_a_missing_redis_says_how_to_start_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CX_REDIS__URL", "redis://user:hunter2@127.0.0.1:1/0")
    assert main(["profile", "get", "email:a@b.co"]) == 2
    err = capsys.readouterr().err
    assert "scripts/services.sh start" in err and "hunter2" not in err


def test_profile_get_shows_the_household(
    redis_url: str,
    topic_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"test:{topic_prefix}hh:"
    settings = Settings(redis=RedisSettings(url=redis_url, prefix=prefix))
    store = make_store(settings, default="redis")
    events = [
        make_event(1, identifiers={"email": "ann@example.com", "address": "7 Oak Avenue"}),
        make_event(2, identifiers={"email": "bob@example.com", "address": "7 OAK AVE."}),
    ]
    outputs = run_flow(
        [raw(e, offset=i) for i, e in enumerate(events)], settings, store, households=True
    )
    [published, *_] = [h for h in outputs["households"] if "household_id" in h]
    monkeypatch.setenv("CX_REDIS__URL", redis_url)
    monkeypatch.setenv("CX_REDIS__PREFIX", prefix)
    assert main(["profile", "get", "email:bob@example.com"]) == 0
    profile = orjson.loads(capsys.readouterr().out)
    assert profile["household_id"] == published["household_id"]
    assert profile["household"]["members"] == 2
    assert "address" not in profile["identifiers"]  # household evidence, not identity
