"""Households against the world's truth: which people a run put together.

A person's predicted household is the ``household_id`` of their customers (the profiles
holding their identifiers, as :func:`replay.evaluate` scores identity: shared ones left
out), the one whose profiles hold most of their identifiers when they differ (a tie goes
to the smaller id); none: alone. Identity fragments a person into several customers
(identity scores count that), and a household links fragments as it links people, so
each person counts once here. Their true household is the truth's ``household`` (none:
alone). :func:`household_scores` reports pairwise precision, recall and F1
over people (two people are a true pair when they live together, a predicted pair
when their own customers share a household), the share of true households split
(their people in more than one predicted household, or alone) and of predicted
households wrongly joined (people of more than one true household), and how many
predicted households join users of one store kiosk who do not live together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

Pairwise = Callable[[dict[str, str], dict[str, str]], dict[str, float]]


def person_households(
    profiles: list[dict[str, Any]], owner: dict[str, str], truth: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """Return person -> true household and person -> predicted household ("solo:" alone)."""
    held: dict[str, Counter[str]] = {}
    household_of: dict[str, str | None] = {}
    for profile in profiles:
        cid = profile["customer_id"]
        household_of[cid] = profile.get("household_id")
        for id_type, values in profile["identifiers"].items():
            for value in values:
                person = owner.get(f"{id_type}:{value}")
                if person is not None:
                    held.setdefault(person, Counter())[cid] += 1
    actual, predicted = {}, {}
    for person in truth["customers"]:
        pid = person["person_id"]
        actual[pid] = person["household"] or "solo:" + pid
        votes: Counter[str] = Counter()
        for cid, n in held.get(pid, Counter()).items():
            household = household_of.get(cid)
            if household is not None:
                votes[household] += n
        best = min(votes, key=lambda h: (-votes[h], h)) if votes else None
        predicted[pid] = best or "solo:" + pid
    return actual, predicted


def household_scores(
    profiles: list[dict[str, Any]], owner: dict[str, str], truth: dict[str, Any], pairwise: Pairwise
) -> dict[str, Any]:
    """Pairwise precision/recall/F1 of households over people, splits and wrong joins."""
    actual, predicted = person_households(profiles, owner, truth)
    true_groups: dict[str, set[str]] = {}
    found_groups: dict[str, set[str]] = {}
    for pid in actual:
        true_groups.setdefault(actual[pid], set()).add(predicted[pid])
        found_groups.setdefault(predicted[pid], set()).add(actual[pid])
    true_multi = [h for h in true_groups if not h.startswith("solo:")]
    found_multi = [h for h in found_groups if not h.startswith("solo:")]
    kiosk = {p["person_id"]: p["kiosk"] for p in truth["customers"] if p.get("kiosk")}
    kiosk_joins = 0
    for household in found_multi:
        people = [pid for pid, h in predicted.items() if h == household]
        kiosks = Counter(kiosk[pid] for pid in people if pid in kiosk)
        if any(n > 1 for n in kiosks.values()) and len(found_groups[household]) > 1:
            kiosk_joins += 1
    split = sum(1 for h in true_multi if len(true_groups[h]) > 1)
    joined = sum(1 for h in found_multi if len(found_groups[h]) > 1)
    return {
        **pairwise(predicted, actual),
        "true_households": len(true_multi),
        "found_households": len(found_multi),
        "split_share": round(split / len(true_multi), 4) if true_multi else 0.0,
        "wrongly_joined_share": round(joined / len(found_multi), 4) if found_multi else 0.0,
        "kiosk_joins": kiosk_joins,
    }
