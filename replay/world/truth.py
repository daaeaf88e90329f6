"""The answer key: who each event belongs to, who churned, which messages are noise.

:class:`Ledger` collects it while the world is generated; :meth:`Ledger.render`
writes it as JSON with one customer, case or shared identifier per line, so the
file stays diff-able and greppable at 10,000 customers. The format is
documented in :mod:`replay.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from replay.world.cases import Case
from replay.world.drafts import HOUR_MS, rfc3339
from replay.world.journey import Latent, Outcome
from replay.world.noise import INVALID_KINDS
from replay.world.stream import DELAYED, DUPLICATE, HAS_DUPLICATE, INVALID, LATE, Stream
from schemas.identifiers import HOUSEHOLD_ONLY_TYPES, normalise_identifier


@dataclass(frozen=True, slots=True)
class SharedValue:
    """An identifier value that is not one person's (a family tablet, a store kiosk, junk)."""

    id_type: str
    value: str  # normalised
    kind: str  # "household_device", "store_kiosk" or "junk"


@dataclass(slots=True)
class Ledger:
    """Ground truth collected person by person."""

    shared: dict[tuple[str, str], SharedValue]
    end_ms: int
    customers: list[dict[str, Any]] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    shared_users: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    def record(
        self,
        person_id: str,
        latent: Latent,
        outcome: Outcome,
        household: str | None,
        kiosk: str | None = None,
    ) -> None:
        """Add one person: the identifiers their emitted events carry, their fate, their cases."""
        owned: dict[str, dict[str, None]] = {}
        seen: dict[tuple[str, str], str] = {}
        for draft in outcome.drafts:
            for id_type, raw in draft.identifiers.items():
                if id_type in HOUSEHOLD_ONLY_TYPES:
                    continue  # a home is no one's identity (replay.world.homes)
                norm = seen.get((id_type, raw))
                if norm is None:
                    norm = seen[(id_type, raw)] = normalise_identifier(id_type, raw)
                key = (id_type, norm)
                if key in self.shared:
                    users = self.shared_users.setdefault(key, [])
                    if person_id not in users:
                        users.append(person_id)
                else:
                    owned.setdefault(id_type, {})[norm] = None
        drafts = outcome.drafts
        self.customers.append(
            {
                "person_id": person_id,
                "identifiers": {t: list(values) for t, values in sorted(owned.items())},
                "churned": outcome.churn_ms is not None,
                "churn_time": None if outcome.churn_ms is None else rfc3339(outcome.churn_ms),
                "churn_probability": round(outcome.churn_probability, 6),
                "experience": round(latent.experience, 6),
                "existing_customer": latent.existing,
                "household": household,
                "kiosk": kiosk,
                "first_seen": rfc3339(drafts[0].t) if drafts else None,
                "event_ids": [d.event_id for d in drafts],
            }
        )
        for case in outcome.cases:
            self.cases.append(_case(person_id, case, self.end_ms))

    def index_noise(self, stream: Stream) -> None:
        """Find the offsets of the noise, and count what the stream holds."""
        invalid, kinds, dups, dup_of, late = [], [], [], [], []
        first_offset: dict[int, int] = {}
        delayed = 0
        for offset, (_arrival, seq, flags, ref) in enumerate(stream.index()):
            if flags & INVALID:
                invalid.append(offset)
                kinds.append(INVALID_KINDS[ref])
            if flags & HAS_DUPLICATE:
                first_offset[seq] = offset
            if flags & DUPLICATE:
                dups.append(offset)
                dup_of.append(first_offset.pop(ref))
            if flags & LATE:
                late.append(offset)
            if flags & DELAYED:
                delayed += 1
        self.noise = {
            "invalid_offsets": invalid,
            "invalid_kinds": kinds,
            "duplicate_offsets": dups,
            "duplicate_of": dup_of,
            "late_offsets": late,
        }
        events = sum(len(c["event_ids"]) for c in self.customers)
        self.stats = {
            "messages": len(stream),
            "events": events,
            "duplicates": len(dups),
            "invalid": len(invalid),
            "late": len(late),
            "delayed": delayed,
            "customers": len(self.customers),
            "churned": sum(1 for c in self.customers if c["churned"]),
            "cases": len(self.cases),
            "breached_cases": sum(1 for c in self.cases if c["breached"]),
        }

    def shared_identifiers(self) -> list[dict[str, Any]]:
        """Shared values that at least two people really used."""
        out = []
        for key, value in self.shared.items():
            users = self.shared_users.get(key, [])
            if len(users) >= 2:
                out.append(
                    {
                        "type": value.id_type,
                        "value": value.value,
                        "kind": value.kind,
                        "person_ids": users,
                    }
                )
        return out

    def render(self, sections: dict[str, Any]) -> bytes:
        """Return the truth file: a JSON object, long lists one item per line."""
        lines = [b"{"]
        items = list(sections.items())
        for i, (name, value) in enumerate(items):
            if isinstance(value, list) and value and isinstance(value[0], dict):
                body = b"[\n" + b",\n".join(b"  " + orjson.dumps(v) for v in value) + b"\n]"
            else:
                body = orjson.dumps(value)
            comma = b"," if i + 1 < len(items) else b""
            lines.append(orjson.dumps(name) + b": " + body + comma)
        lines.append(b"}\n")
        return b"\n".join(lines)


def _case(person_id: str, case: Case, end_ms: int) -> dict[str, Any]:
    # Breached as the stream shows it: no resolution by the due time. A case due
    # after the horizon is not (yet) breached.
    due, resolved = case.due_ms, case.resolved_ms
    return {
        "case_id": case.case_id,
        "person_id": person_id,
        "priority": case.priority,
        "category": case.category,
        "opened": rfc3339(case.opened_ms),
        "due": rfc3339(case.due_ms),
        "resolved": None if case.resolved_ms is None else rfc3339(case.resolved_ms),
        "sla_hours": (due - case.opened_ms) // HOUR_MS,
        "breached": due < end_ms if resolved is None else resolved > due,
    }
