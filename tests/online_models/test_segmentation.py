"""Online segments: labels, descriptions, learning interval, determinism."""

from __future__ import annotations

import random

from online_models.features import CustomerFeatures
from online_models.segmentation import Segmenter
from online_models.settings import ModelSettings
from tests.online_models.conftest import ev, ms


def population(seed: int) -> list[tuple[CustomerFeatures, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(300):
        f = CustomerFeatures()
        big = i % 2 == 0
        for day in range(10):
            amount = 500.0 if big else 5.0
            f.update(ev(f"{i}-{day}", day, "cx.order.placed", amount=amount), None, None)
            f.update(ev(f"{i}-{day}s", day + 0.1), 0.8 if big else -0.8, None)
        out.append((f, ms(10 + rng.random())))
    return out


def run(seed: int = 1) -> tuple[Segmenter, list[str]]:
    seg = Segmenter(ModelSettings(seed=42, segmentation={"k": 3, "step": 0.1}))
    labels = [seg.assign(f, now) for f, now in population(seed) for _ in range(3)]
    return seg, labels


def test_segments_have_labels_and_descriptions() -> None:
    seg, labels = run()
    assert all(label.startswith("seg-") for label in labels)
    descriptions = seg.segments()
    assert set(descriptions) == {"seg-0", "seg-1", "seg-2"}
    used = {labels[i] for i in range(0, len(labels), 3)}
    assert len(used) >= 2
    assert any("value" in descriptions[label] for label in used)


def test_a_customer_is_learnt_at_most_once_per_interval() -> None:
    seg, _ = run()
    assert seg.learnt == 300  # each customer assigned three times at the same time


def test_the_same_stream_gives_the_same_segments() -> None:
    assert run()[1] == run()[1]


def test_the_label_is_kept_on_the_customer() -> None:
    seg = Segmenter()
    f = CustomerFeatures()
    f.update(ev(1, 0), None, None)
    label = seg.assign(f, ms(0))
    assert f.segment == label and f.segment_ms == ms(0)
