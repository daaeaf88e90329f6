"""Backtest a catalogue: replay a log with the current and a new rule set, and diff the NBAs.

``cxstream backtest --rules NEW --log LOG [--current PATH] [--json OUT]`` runs
the offline flow (:func:`flows.app.offline.run_offline`, in-memory identity
store) twice over the same log, once with the current catalogue (``--current``,
else ``CX_NBA__CATALOGUE``, else the shipped default) and once with ``NEW``.
As the flow is deterministic, every difference comes from the rules.

NBAs are matched by (customer, trigger event ids, action): an NBA only the new
run has is *added*, one only the current run has is *removed*, one in both
whose priority, score, channel, class, message, reason codes or expiry differ
is *changed*. Counts are given per action and in total.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from flows.nba.catalogue import load_catalogue
from flows.settings import Settings

Key = tuple[str, tuple[str, ...], str]
COMPARED = (
    "priority", "score", "channel", "action_class", "message", "reason_codes", "expires_at",
)  # fmt: skip


@dataclass
class ActionDiff:
    """What changed for one action."""

    current: int = 0
    new: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    fields: Counter[str] = field(default_factory=Counter)  # changed field -> how often


@dataclass
class BacktestReport:
    """The difference between two runs of the same log."""

    current_rules: str
    new_rules: str
    log: str
    actions: dict[str, ActionDiff]
    examples: list[dict[str, Any]] = field(default_factory=list)

    def totals(self) -> ActionDiff:
        total = ActionDiff()
        for diff in self.actions.values():
            total.current += diff.current
            total.new += diff.new
            total.added += diff.added
            total.removed += diff.removed
            total.changed += diff.changed
            total.fields.update(diff.fields)
        return total

    def to_json(self) -> dict[str, Any]:
        def plain(d: ActionDiff) -> dict[str, Any]:
            return {
                "current": d.current,
                "new": d.new,
                "added": d.added,
                "removed": d.removed,
                "changed": d.changed,
                "changed_fields": dict(sorted(d.fields.items())),
            }

        return {
            "log": self.log,
            "current_rules": self.current_rules,
            "new_rules": self.new_rules,
            "total": plain(self.totals()),
            "actions": {name: plain(d) for name, d in sorted(self.actions.items())},
            "examples": self.examples,
        }

    def render(self) -> str:
        """Return a readable table, one row per action and a total."""
        head = ("action", "current", "new", "added", "removed", "changed")
        rows = [
            (name, d.current, d.new, d.added, d.removed, d.changed)
            for name, d in sorted(self.actions.items())
        ]
        t = self.totals()
        rows.append(("total", t.current, t.new, t.added, t.removed, t.changed))
        width = max(len(head[0]), *(len(str(r[0])) for r in rows))
        lines = [
            f"backtest of {self.log}",
            f"  current rules: {self.current_rules}",
            f"  new rules:     {self.new_rules}",
            "",
            f"{head[0]:<{width}}" + "".join(f"{h:>9}" for h in head[1:]),
        ]
        for i, row in enumerate(rows):
            if i == len(rows) - 1:
                lines.append("-" * (width + 9 * 5))
            lines.append(f"{row[0]:<{width}}" + "".join(f"{v:>9}" for v in row[1:]))
        if t.fields:
            lines.append(
                "changed fields: " + ", ".join(f"{k} {n}" for k, n in sorted(t.fields.items()))
            )
        return "\n".join(lines)


def read_nbas(path: Path) -> dict[Key, dict[str, Any]]:
    """Return the NBAs of an offline run's ``nba.jsonl``, by (customer, triggers, action)."""
    out: dict[Key, dict[str, Any]] = {}
    for line in path.read_bytes().splitlines():
        nba = orjson.loads(line)
        out[(nba["customer_id"], tuple(nba["trigger_event_ids"]), nba["action"])] = nba
    return out


def diff_nbas(
    current: dict[Key, dict[str, Any]], new: dict[Key, dict[str, Any]], max_examples: int = 5
) -> tuple[dict[str, ActionDiff], list[dict[str, Any]]]:
    """Per-action counts of added, removed and changed NBAs, and a few examples."""
    actions: dict[str, ActionDiff] = {}
    examples: list[dict[str, Any]] = []

    def diff_of(action: str) -> ActionDiff:
        return actions.setdefault(action, ActionDiff())

    for key in sorted(current.keys() | new.keys()):
        before, after = current.get(key), new.get(key)
        d = diff_of(key[2])
        d.current += before is not None
        d.new += after is not None
        if before is None or after is None:
            d.added += before is None
            d.removed += after is None
            change = "added" if before is None else "removed"
            if len(examples) < max_examples:
                examples.append({"change": change, "nba": after or before})
            continue
        changed = [f for f in COMPARED if before.get(f) != after.get(f)]
        if changed:
            d.changed += 1
            d.fields.update(changed)
            if len(examples) < max_examples:
                was = {f: before.get(f) for f in changed}
                now = {f: after.get(f) for f in changed}
                examples.append({"change": "changed", "id": after["id"], "was": was, "now": now})
    return actions, examples


def backtest(
    settings: Settings, log: Path, new_rules: Path, current_rules: Path | None = None
) -> BacktestReport:
    """Run ``log`` with both catalogues and diff their NBAs (see the module docstring).

    Both catalogues are checked first, so a malformed one fails before any run
    (:class:`~flows.nba.catalogue.CatalogueError`).
    """
    from flows.app.offline import run_offline  # the flow: only when a backtest runs

    current = str(current_rules) if current_rules is not None else settings.nba.catalogue
    current_name = load_catalogue(current).path
    new_name = load_catalogue(new_rules).path
    results = []
    with tempfile.TemporaryDirectory(prefix="cx-backtest-") as tmp:
        for name, rules in (("current", current), ("new", str(new_rules))):
            run_settings = settings.model_copy(
                update={
                    "nba": settings.nba.model_copy(update={"catalogue": rules}),
                    # each run starts from an empty identity graph of its own
                    "identity": settings.identity.model_copy(update={"store": "memory"}),
                }
            )
            out_dir = Path(tmp) / name
            run_offline(run_settings, [log], out_dir)
            results.append(read_nbas(out_dir / "nba.jsonl"))
    actions, examples = diff_nbas(results[0], results[1])
    return BacktestReport(current_name, new_name, str(log), actions, examples)
