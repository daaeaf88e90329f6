"""Attribution through the whole flow (#15): an event stays with the person its strongest
identifier names, on a shared family tablet and on a store kiosk.

The store-level rules and their Redis twin are in tests/state/test_attribution.py; here the
same cases go through decode, resolve, the journey and the profile step of the real flow.
"""

from __future__ import annotations

from typing import Any

import pytest

from flows.app.stores import make_store
from flows.settings import Settings
from schemas.outputs import ProfileSnapshot
from state.store import ProfileStore
from tests.conftest import raw, run_flow

TABLET = "tablet-9f2"
KIOSK = "kiosk-store-17"


def event(n: int, minute: int, etype: str, identifiers: dict[str, str], **data: Any) -> Any:
    return {
        "id": f"e-{n}",
        "source": "/tests",
        "type": etype,
        "time": f"2026-03-02T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
        "data": {"channel": "store", "touchpoint": "store.till", "identifiers": identifiers,
                 **data},
    }  # fmt: skip


def profiles_by_crm(store: ProfileStore) -> dict[str, ProfileSnapshot]:
    out = {}
    for cid in store.customers():
        profile = store.profile(cid)
        assert profile is not None
        for crm in profile.identifiers.get("crm_id", []):
            out[crm] = profile
    return out


@pytest.mark.parametrize("batch_size", [1, 50])
def test_bs_order_on_as_tablet_counts_for_b(batch_size: int) -> None:
    log = [
        event(1, 0, "cx.app.login", {"crm_id": "A", "email": "a@example.com", "device_id": TABLET}),
        event(2, 5, "cx.order.placed", {"crm_id": "A", "device_id": TABLET}, amount=40.0),
        event(3, 9, "cx.web.login", {"crm_id": "B", "email": "b@example.com"}),
        event(4, 20, "cx.order.placed", {"crm_id": "B", "device_id": TABLET}, amount=25.5),
    ]
    store = make_store(Settings(), default="memory")
    out = run_flow([raw(e, offset=i) for i, e in enumerate(log)], store=store,
                   batch_size=batch_size)  # fmt: skip
    by_crm = profiles_by_crm(store)
    assert by_crm["A"].customer_id != by_crm["B"].customer_id  # never merged
    assert (by_crm["A"].orders, by_crm["A"].lifetime_value) == (1, 40.0)
    assert (by_crm["B"].orders, by_crm["B"].lifetime_value) == (1, 25.5)
    assert by_crm["A"].identifiers["device_id"] == [TABLET]  # A saw it first and keeps it
    assert "device_id" not in by_crm["B"].identifiers
    (conflict,) = [a for a in out["alerts"] if a["kind"] == "identity_conflict"]
    assert conflict["customer_id"] == by_crm["B"].customer_id
    assert conflict["evidence"]["unlinked"] == [f"device_id:{TABLET}"]  # not silently dropped
    assert out["identity"] == []


def test_twelve_people_on_one_kiosk_are_twelve_customers() -> None:
    log = [
        event(n, n * 7, "cx.store.visit", {"crm_id": f"C{n:02d}", "device_id": KIOSK})
        for n in range(12)
    ]
    log.append(event(99, 200, "cx.store.visit", {"device_id": KIOSK}))  # the kiosk alone
    store = make_store(Settings(), default="memory")
    out = run_flow([raw(e, offset=i) for i, e in enumerate(log)], store=store)
    by_crm = profiles_by_crm(store)
    assert sorted(by_crm) == [f"C{n:02d}" for n in range(12)]
    assert len({p.customer_id for p in by_crm.values()}) == 12
    assert all(p.event_count == 1 for p in by_crm.values())  # each their own visit
    assert all(KIOSK not in p.identifiers.get("device_id", []) for p in by_crm.values())
    assert out["identity"] == []  # no merge
    assert sum(p.event_count for p in by_crm.values()) == 12  # the kiosk-only visit: anonymous
