"""The garbage collector, tuned for a long-running flow.

CPython's default thresholds (700, 10, 10) run a young collection every 700 net
allocations and a full one, which walks every live object (journeys, models, caches,
dedupe buckets), every 100 young ones. The flow allocates millions of short-lived
objects a second and makes few reference cycles, so on the reference replay (a
3,000-customer world) the collector took a quarter of the CPU. :func:`tune_collector`
freezes what start-up built (modules, models, settings: never garbage) out of every
collection and collects young objects every :data:`YOUNG_THRESHOLD` allocations
instead (the older generations keep their ratios); cycles are still found, a little
later. Outputs do not depend on it.
"""

from __future__ import annotations

import gc
from typing import Final

#: Net allocations between young collections (CPython's default: 700).
YOUNG_THRESHOLD: Final = 50_000
#: Young collections per middle one, middle ones per full one (CPython's own): a full
#: collection still comes every 5M allocations, so cyclic garbage that reached the
#: oldest generation is freed (CPython also waits until it has grown by a quarter).
OLDER_THRESHOLDS: Final = (10, 10)


def tune_collector() -> None:
    """Freeze start-up's objects and widen the thresholds; call once the flow is built."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
