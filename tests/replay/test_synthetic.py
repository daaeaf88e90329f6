from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from statistics import mean
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from replay.log import read_log
from replay.synthetic import World, generate_world, write_world
from replay.world.drafts import Draft, EventIds
from replay.world.identity import raw_email, raw_phone
from replay.world.noise import INVALID_KINDS, make_invalid
from replay.world.sharing import SharingRates
from schemas.envelope import InteractionEvent
from schemas.identifiers import HOUSEHOLD_ONLY_TYPES, normalise_identifier
from schemas.records import RawMessage
from state.household_rules import normalise_address

CUSTOMERS, DAYS, SEED = 500, 90, 11


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(CUSTOMERS, DAYS, SEED)


@pytest.fixture(scope="module")
def truth(world: World) -> dict[str, Any]:
    return world.truth()


@pytest.fixture(scope="module")
def written(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_world(world, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def messages(written: tuple[Path, Path]) -> list[RawMessage]:
    return list(read_log(written[0]))


@pytest.fixture(scope="module")
def events(messages: list[RawMessage], truth: dict[str, Any]) -> dict[int, InteractionEvent]:
    """offset -> validated event, for every message that is not an injected invalid one."""
    invalid = set(truth["invalid_offsets"])
    return {
        m.offset: InteractionEvent.model_validate_json(m.value or b"")
        for m in messages
        if m.offset is not None and m.offset not in invalid
    }


@pytest.fixture(scope="module")
def owner(truth: dict[str, Any]) -> dict[str, str]:
    return {e: c["person_id"] for c in truth["customers"] for e in c["event_ids"]}


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def files(seed: int, name: str) -> list[bytes]:
        paths = write_world(generate_world(30, 10, seed), tmp_path / name)
        return [p.read_bytes() for p in paths]

    first = files(5, "a")
    assert files(5, "b") == first
    other = files(6, "c")
    assert other[0] != first[0] and other[1] != first[1]


def test_the_log_is_kafka_like(messages: list[RawMessage], truth: dict[str, Any]) -> None:
    assert [m.offset for m in messages] == list(range(len(messages)))
    assert {(m.topic, m.partition) for m in messages} == {("cx.events", 0)}
    stamps = [m.timestamp_ms or 0 for m in messages]
    assert stamps == sorted(stamps)  # offsets follow arrival time
    assert len(messages) == truth["stats"]["messages"]


def test_valid_messages_validate_and_injected_invalid_ones_fail(
    messages: list[RawMessage], events: dict[int, InteractionEvent], truth: dict[str, Any]
) -> None:
    assert len(events) == len(messages) - len(truth["invalid_offsets"])
    for offset in truth["invalid_offsets"]:
        with pytest.raises(ValidationError):
            InteractionEvent.model_validate_json(messages[offset].value or b"")
    assert len(set(truth["invalid_kinds"])) >= 5  # several kinds, not one


@pytest.mark.parametrize("kind", INVALID_KINDS)
def test_every_kind_of_invalid_message_fails_validation(kind: str) -> None:
    rng = random.Random(kind)
    ids = EventIds(7)
    for n in range(30):
        draft = Draft(
            1772445600000 + n,
            f"w-{n}",
            "cx.survey.nps",
            "survey",
            "call_center.billing",
            "/survey/feedback",
            {"email": "ann@example.com", "phone": "(415) 555-0100"},
            {"nps": 9, "text": "Great service 🙌"},
            tz="-08:00" if n % 2 else "Z",
        )
        bad, made = make_invalid(rng, draft, ids, kind)
        assert made == kind
        with pytest.raises(ValidationError):
            InteractionEvent.model_validate_json(bad)


def test_event_ids_are_unique_and_each_belongs_to_one_person(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    assert len(owner) == sum(len(c["event_ids"]) for c in truth["customers"])
    assert {e.id for e in events.values()} == set(owner)
    assert len(owner) == truth["stats"]["events"]


def test_identifiers_in_events_match_the_truth(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    shared = {(s["type"], s["value"]) for s in truth["shared_identifiers"]}
    people = {c["person_id"]: c for c in truth["customers"]}
    carried: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for event in events.values():
        person = people[owner[event.id]]
        for id_type, value in event.data.identifiers.items():
            if id_type in HOUSEHOLD_ONLY_TYPES:
                continue  # a home, no identity (test_homes_are_shared_by_households_only)
            carried[person["person_id"]].add((id_type, value))
            if (id_type, value) not in shared:
                assert value in person["identifiers"].get(id_type, []), (event.id, id_type, value)
    for person in truth["customers"]:  # and every identifier in the truth is really used
        listed = {(t, v) for t, values in person["identifiers"].items() for v in values}
        assert listed <= carried[person["person_id"]]


def test_homes_are_shared_by_households_only(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    household = {c["person_id"]: c["household"] or c["person_id"] for c in truth["customers"]}
    homes: dict[str, set[str]] = defaultdict(set)  # normalised address -> true households
    spellings: dict[str, set[str]] = defaultdict(set)
    for event in events.values():
        raw = event.data.identifiers.get("address")
        if raw is not None:
            homes[normalise_address(raw)].add(household[owner[event.id]])
            spellings[normalise_address(raw)].add(raw)
    assert homes and all(len(h) == 1 for h in homes.values())
    assert any(len(s) > 1 for s in spellings.values())  # typed many ways, folded to one
    groups = {g["household"]: g for g in truth["households"]}
    assert {g["kind"] for g in groups.values()} == {"family", "couple"}
    assert all(len(g["person_ids"]) >= 2 for g in groups.values())
    kiosk_users = {c["person_id"] for c in truth["customers"] if c["kiosk"]}
    assert kiosk_users and not any(
        household[p] in groups and groups[household[p]]["kind"] == "couple" for p in kiosk_users
    )


def test_personal_identifiers_are_never_shared(truth: dict[str, Any]) -> None:
    holders: dict[tuple[str, str], str] = {}
    for person in truth["customers"]:
        for id_type, values in person["identifiers"].items():
            for value in values:
                assert (
                    holders.setdefault((id_type, value), person["person_id"]) == person["person_id"]
                )


def test_shared_identifiers_are_used_by_several_people(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    kinds = {s["kind"] for s in truth["shared_identifiers"]}
    assert kinds == {"household_device", "store_kiosk", "junk"}
    users: dict[tuple[str, str], set[str]] = defaultdict(set)
    for event in events.values():
        for id_type, value in event.data.identifiers.items():
            users[(id_type, value)].add(owner[event.id])
    for shared in truth["shared_identifiers"]:
        assert len(shared["person_ids"]) >= 2
        assert users[(shared["type"], shared["value"])] == set(shared["person_ids"])
    junk = {s["value"] for s in truth["shared_identifiers"] if s["kind"] == "junk"}
    assert {"test@test.com", normalise_identifier("phone", "0000000000")} <= junk


def test_messy_spellings_normalise_to_the_canonical_value() -> None:
    rng = random.Random(1)
    for number in ("+14155550100", "+447700900123"):
        assert {normalise_identifier("phone", raw_phone(rng, number)) for _ in range(50)} == {
            number
        }
    assert {normalise_identifier("email", raw_email(rng, "a.b@c.com")) for _ in range(50)} == {
        "a.b@c.com"
    }


def test_churn_rate_and_silence_after_churn(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    churners = {c["person_id"]: _ms(c["churn_time"]) for c in truth["customers"] if c["churned"]}
    assert 0.08 <= len(churners) / CUSTOMERS <= 0.3
    closed: dict[str, int] = {}
    for event in events.values():
        person = owner[event.id]
        if person in churners:
            assert event.epoch_ms <= churners[person]
        if event.type == "cx.account.closed":
            closed[person] = event.epoch_ms
    assert closed == churners


def test_churn_follows_the_hidden_experience(truth: dict[str, Any]) -> None:
    churned = [c for c in truth["customers"] if c["churned"]]
    stayed = [c for c in truth["customers"] if not c["churned"]]
    assert mean(c["churn_probability"] for c in churned) > 3 * mean(
        c["churn_probability"] for c in stayed
    )
    assert mean(c["experience"] for c in churned) < mean(c["experience"] for c in stayed) - 0.2


def test_touchpoint_quality_shows_in_nps(
    truth: dict[str, Any], events: dict[int, InteractionEvent]
) -> None:
    quality = {tp: v["quality"] for tp, v in truth["touchpoints"].items()}
    scores: dict[bool, list[int]] = defaultdict(list)
    for event in events.values():
        if event.data.nps is not None and abs(quality[event.data.touchpoint]) >= 0.15:
            scores[quality[event.data.touchpoint] > 0].append(event.data.nps)
    assert min(len(scores[True]), len(scores[False])) > 50
    assert mean(scores[True]) > mean(scores[False]) + 1.0


def test_noise_is_about_as_specified(
    messages: list[RawMessage], events: dict[int, InteractionEvent], truth: dict[str, Any]
) -> None:
    n = truth["stats"]["events"]
    assert 0.008 < len(truth["duplicate_offsets"]) / n < 0.025
    assert 0.001 < len(truth["invalid_offsets"]) / n < 0.01
    assert 0.002 < len(truth["late_offsets"]) / n < 0.01
    assert 0.015 < truth["stats"]["delayed"] / n < 0.045
    for dup, first in zip(truth["duplicate_offsets"], truth["duplicate_of"], strict=True):
        assert first < dup and messages[dup].value == messages[first].value
        assert (messages[dup].timestamp_ms or 0) - (messages[first].timestamp_ms or 0) <= 90_000
    for offset in truth["late_offsets"]:
        lag = (messages[offset].timestamp_ms or 0) - events[offset].epoch_ms
        assert lag >= 3_600_000
    # Out of order: an event older than one that arrived before it by more than a minute.
    newest, behind = 0, 0
    for offset in sorted(events):
        t = events[offset].epoch_ms
        behind += t < newest - 60_000
        newest = max(newest, t)
    assert 0.01 < behind / n < 0.05


def test_cases_meet_or_breach_their_sla(
    truth: dict[str, Any], events: dict[int, InteractionEvent]
) -> None:
    cases = truth["cases"]
    breached = sum(c["breached"] for c in cases)
    assert len(cases) > 50 and 0.1 < breached / len(cases) < 0.5
    resolved = {e.data.case_id for e in events.values() if e.type.endswith("case.resolved")}
    for case in cases:
        assert (case["resolved"] is not None) == (case["case_id"] in resolved)
        hours = (_ms(case["due"]) - _ms(case["opened"])) / 3_600_000
        assert hours == truth["sla_hours"][case["priority"]] == case["sla_hours"]


def test_text_is_varied_and_follows_experience(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    texts = [e.data.text for e in events.values() if e.data.text]
    assert len(set(texts)) > 150
    experience = {c["person_id"]: c["experience"] for c in truth["customers"]}
    angry = [experience[owner[e.id]] for e in events.values() if "#fail" in (e.data.text or "")]
    happy = [experience[owner[e.id]] for e in events.values() if "🙌" in (e.data.text or "")]
    assert angry and happy and mean(angry) < mean(happy)


def test_truth_file_is_the_truth(written: tuple[Path, Path], truth: dict[str, Any]) -> None:
    assert orjson.loads(written[1].read_bytes()) == truth
    assert truth["params"] | {"noise": None, "sharing": None} == {
        "customers": CUSTOMERS,
        "days": DAYS,
        "seed": SEED,
        "start": "2026-03-02T00:00:00.000Z",
        "end": "2026-05-31T00:00:00.000Z",
        "topic": "cx.events",
        "partition": 0,
        "phone_country_code": "1",
        "noise": None,
        "sharing": None,
    }
    assert truth["params"]["sharing"]["kiosk_sizes"] == [10, 40]


def test_progress_counts_customers() -> None:
    seen: list[int] = []
    generate_world(250, 3, 1, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 250 and len(seen) <= 101


def test_bad_arguments_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="at least 1 customer"):
        generate_world(0, 10, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_world(1, 1, 1, start=datetime(2026, 1, 1))  # noqa: DTZ001 (the naive start under test)


def _users(truth: dict[str, Any], kind: str) -> dict[str, list[str]]:
    return {s["value"]: s["person_ids"] for s in truth["shared_identifiers"] if s["kind"] == kind}


def test_family_tablets_are_shared_by_two_to_four_people_with_their_own_ids(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    tablets = _users(truth, "household_device")
    people = {c["person_id"]: c for c in truth["customers"]}
    assert len(tablets) >= 5
    assert {len(users) for users in tablets.values()} <= {2, 3, 4}
    assert 4 in {len(users) for users in tablets.values()}  # households of 2-4
    for users in tablets.values():
        assert len({people[p]["household"] for p in users}) == 1  # one family per tablet
        assert all(people[p]["household"] is not None for p in users)
    # each member logs in on the tablet with their own email, never another member's
    for event in events.values():
        ids = event.data.identifiers
        if ids.get("device_id") in tablets and "email" in ids:
            assert ids["email"] in people[owner[event.id]]["identifiers"]["email"]


def test_store_kiosks_are_used_by_many_people_each_with_their_own_crm_id(
    truth: dict[str, Any], events: dict[int, InteractionEvent], owner: dict[str, str]
) -> None:
    kiosks = _users(truth, "store_kiosk")
    people = {c["person_id"]: c for c in truth["customers"]}
    assert len(kiosks) == 1  # 3% of 500 people: one kiosk of 15
    ((device, users),) = kiosks.items()
    assert len(users) >= 10
    assert {people[p]["kiosk"] for p in users} == {"k0000"}
    assert sum(1 for c in truth["customers"] if c["kiosk"]) == len(users)
    at_kiosk = [e for e in events.values() if e.data.identifiers.get("device_id") == device]
    assert len({e.data.touchpoint for e in at_kiosk}) == 1  # the kiosk is in one store
    for event in at_kiosk:
        person = people[owner[event.id]]
        assert event.type == "cx.order.placed" and event.data.channel == "store"
        assert event.data.identifiers["crm_id"] == person["identifiers"]["crm_id"][0]
    assert {owner[e.id] for e in at_kiosk} == set(users)  # every kiosk user used it
    crm_ids = [people[p]["identifiers"]["crm_id"][0] for p in users]
    assert len(set(crm_ids)) == len(users)


def test_sharing_is_configurable_and_recorded() -> None:
    none = generate_world(200, 10, 4, sharing=SharingRates(family_people=0, kiosk_people=0))
    kinds = {s["kind"] for s in none.truth()["shared_identifiers"]}
    assert kinds == {"junk"}
    many = generate_world(
        300, 10, 4, sharing=SharingRates(kiosk_people=0.3, kiosk_sizes=(20, 25), kiosk_use=1.0)
    ).truth()
    kiosks = _users(many, "store_kiosk")
    assert 3 <= len(kiosks) <= 5 and all(len(u) <= 25 for u in kiosks.values())
    assert many["params"]["sharing"]["kiosk_people"] == 0.3
    with pytest.raises(ValueError, match="at least 2 people"):
        SharingRates(kiosk_sizes=(1, 5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        SharingRates(kiosk_use=1.5)
