"""The Experience API shows a customer's household (issue #21), over real HTTP."""

from __future__ import annotations

import orjson

from tests.api.conftest import Demo, LiveServer


def test_the_lookup_shows_the_household_of_the_profile(demo: Demo, demo_server: LiveServer) -> None:
    profiles = [
        orjson.loads(line) for line in (demo.out_dir / "profiles.jsonl").read_bytes().splitlines()
    ]
    members = [p for p in profiles if p["household_id"] and p["identifiers"].get("email")]
    assert members, "the demo has no household member with an email"
    alone = next(p for p in profiles if not p["household_id"] and p["identifiers"].get("email"))
    with demo_server.client() as http:
        for profile in (members[0], alone):
            body = {"type": "email", "value": profile["identifiers"]["email"][0]}
            found = http.post("/v1/profiles/lookup", json=body)
            assert found.status_code == 200, found.text
            shown = found.json()["profile"]
            assert shown["customer_id"] == profile["customer_id"]
            # the household as of the customer's latest event, as on cx.profiles
            assert shown["household_id"] == profile["household_id"]
            assert shown["household"] == profile["household"]
        by_id = http.get(f"/v1/customers/{members[0]['customer_id']}")
        assert by_id.status_code == 200, by_id.text
        household = by_id.json()["household"]
        assert household["members"] >= 2 and set(household) == {
            "members",
            "lifetime_value",
            "orders",
            "mean_nps",
            "open_cases",
        }
