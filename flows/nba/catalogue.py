"""The action catalogue: a TOML file of actions, rules and class levers.

A CX team edits this file; adding an action needs no code change. The default
catalogue ships as ``flows/nba/catalogue.toml`` and is used when
``CX_NBA__CATALOGUE`` is unset. Its shape::

    [levers]                 # arbitration weight per action class (default 1.0)
    service = 1.0
    marketing = 0.6

    [[action]]
    id = "service_recovery"  # unique; part of the NBA's id
    class = "service"        # service, retention, marketing or sales
    channel = "call_center"
    value = 100.0            # what the action is worth (any unit, the same for all)
    when = ["nps <= 6"]      # all must hold (see flows.nba.conditions)
    cooldown_hours = 72      # not again for this customer within this much event time
    expiry_hours = 48        # the NBA's expires_at = trigger time + this
    response_timeout_hours = 24  # an impression unanswered this long is a no_response
    acceptance_prior = 0.2   # the acceptance rate assumed before any response (cold start)
    message = "Call {customer_id} back: NPS {nps} at {touchpoint}"

Optional keys: ``propensity`` (a number field of the context, or a constant;
by default 1.0 for service, ``churn`` for retention and
``category_propensity`` for marketing and sales), ``consent`` (the purpose a
marketing or sales action needs; marketing defaults to ``marketing``; service
and retention actions take none), ``description``, ``enabled``,
``response_timeout_hours`` (an impression unanswered this long in event time is a
``no_response`` negative; by default ``expiry_hours``) and ``acceptance_prior`` (the
acceptance rate the adaptive model starts from, :mod:`online_models.acceptance`;
by default 0.2).

Messages are ``str.format`` templates over the context fields; an unknown
field name is a load error, an unknown *value* renders as ``n/a``.

Anything wrong (TOML syntax, an unknown key, field or operator, a bad value,
a duplicate id) raises :class:`CatalogueError` whose text is
``path:line: reason``.

>>> cat = load_catalogue(None)
>>> [a.id for a in cat.actions][:2]
['service_recovery', 'passive_feedback']
>>> cat.lever("service")
1.0
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any, NoReturn, cast, get_args

from flows.nba.conditions import Condition, ConditionError, parse_condition
from flows.nba.context import FIELDS
from flows.records import Context
from schemas.outputs import ActionClass

DEFAULT_CATALOGUE = Path(__file__).resolve().parent / "catalogue.toml"
CLASSES: tuple[str, ...] = get_args(ActionClass)
DEFAULT_PROPENSITY: dict[str, str | float] = {
    "service": 1.0,
    "retention": "churn",
    "marketing": "category_propensity",
    "sales": "category_propensity",
}
DEFAULT_ACCEPTANCE_PRIOR = 0.2
_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_KEYS = {
    "id", "class", "channel", "value", "when", "cooldown_hours", "expiry_hours", "message",
    "propensity", "consent", "description", "enabled", "response_timeout_hours",
    "acceptance_prior",
}  # fmt: skip
_REQUIRED = ("id", "class", "channel", "value", "when", "message")
_SAMPLE: dict[str, Any] = {"number": 1.5, "text": "x", "bool": True}


class CatalogueError(ValueError):
    """A catalogue that cannot be used; ``str()`` is ``path:line: reason``."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path, self.line, self.reason = str(path), line, reason


@dataclass(frozen=True)
class Action:
    """One action of the catalogue (see the module docstring)."""

    id: str
    action_class: ActionClass
    channel: str
    value: float
    when: tuple[Condition, ...]
    message: str
    cooldown_ms: int
    expiry_ms: int
    propensity: str | float
    consent: str | None
    description: str = ""
    response_timeout_ms: int = 86_400_000
    acceptance_prior: float = 0.2

    def render(self, ctx: Context) -> str:
        """Return the message for ``ctx``; unknown values show as ``n/a`` and never raise."""
        return _Renderer().format(self.message, **ctx)


@dataclass(frozen=True)
class HouseholdCap:
    """One fatigue budget for a family: ``max_per_day`` actions of ``classes`` per household."""

    max_per_day: int
    classes: tuple[str, ...] = ("marketing",)


@dataclass(frozen=True)
class Catalogue:
    """The actions (in file order), the class levers and the household cap of one file."""

    path: str
    actions: tuple[Action, ...]
    levers: Mapping[str, float]
    household_cap: HouseholdCap | None = None

    def lever(self, action_class: str) -> float:
        return self.levers.get(action_class, 1.0)

    def uses(self, *fields: str) -> bool:
        """Whether any action reads one of ``fields`` (lets the caller skip costly ones)."""
        wanted = set(fields)
        for action in self.actions:
            if action.propensity in wanted or any(c.field in wanted for c in action.when):
                return True
            if wanted & _template_fields(action.message):
                return True
        return False


def load_catalogue(path: str | Path | None) -> Catalogue:
    """Read and check a catalogue file (the shipped default when ``path`` is None)."""
    file = Path(path) if path is not None else DEFAULT_CATALOGUE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(file, 0, f"cannot read the catalogue: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(file, str(exc)) from None
    return _Reader(file, text).catalogue(data)


def _syntax_error(file: Path, message: str) -> CatalogueError:
    where = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if where is None:
        return CatalogueError(file, 1, f"invalid TOML: {message}")
    reason = message[: where.start()].strip()
    return CatalogueError(file, int(where[1]), f"invalid TOML: {reason} (column {where[2]})")


class _Reader:
    """Checks the parsed TOML and finds the line of each mistake in the text."""

    def __init__(self, file: Path, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        headers = [i for i, line in enumerate(self.lines) if line.lstrip().startswith("[")]
        self.headers = headers
        action = re.compile(r"\s*\[\[\s*action\s*\]\]")
        self.action_lines = [i for i in headers if action.match(self.lines[i])]

    def catalogue(self, data: dict[str, Any]) -> Catalogue:
        for key in data:
            if key not in ("version", "levers", "action", "household"):
                self.fail(self.find(f"{key}"), f"unknown top-level key {key!r}")
        if data.get("version", 1) != 1:
            self.fail(self.find("version"), "only version = 1 is known")
        levers = self.levers(data.get("levers", {}))
        raw_actions = data.get("action", [])
        if not isinstance(raw_actions, list) or not raw_actions:
            self.fail(1, "no actions: add at least one [[action]] table")
        actions: list[Action] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_actions):
            action = self.action(index, raw)
            if action is None:
                continue
            if action.id in seen:
                self.fail(self.find_in(index, "id"), f"duplicate action id {action.id!r}")
            seen.add(action.id)
            actions.append(action)
        cap = self.household(data["household"]) if "household" in data else None
        return Catalogue(str(self.file), tuple(actions), levers, cap)

    def household(self, raw: Any) -> HouseholdCap:
        """Read the ``[household]`` table: ``max_per_day`` (int >= 1) and ``classes``."""
        line = self.find("[household]")
        if not isinstance(raw, dict) or set(raw) - {"max_per_day", "classes"}:
            self.fail(line, "[household] takes max_per_day and classes")
        most, classes = raw.get("max_per_day"), raw.get("classes", ["marketing"])
        if not isinstance(most, int) or isinstance(most, bool) or most < 1:
            self.fail(self.find("max_per_day", line), "household max_per_day must be an int >= 1")
        if not isinstance(classes, list) or not set(classes) <= set(CLASSES):
            self.fail(self.find("classes", line), f"household classes must be among {CLASSES}")
        return HouseholdCap(most, tuple(classes))

    def levers(self, raw: Any) -> dict[str, float]:
        line = self.find("[levers]")
        if not isinstance(raw, dict):
            self.fail(line, "[levers] must be a table of class = weight")
        levers: dict[str, float] = {}
        for name, weight in raw.items():
            if name not in CLASSES:
                self.fail(self.find(name, line), f"unknown action class {name!r} in [levers]")
            if not _number(weight) or weight < 0:
                self.fail(self.find(name, line), f"lever {name} must be a number >= 0")
            levers[name] = float(weight)
        return levers

    def action(self, index: int, raw: dict[str, Any]) -> Action | None:  # noqa: PLR0912 (one check per [[action]] key)
        at = self.action_lines[index] + 1 if index < len(self.action_lines) else 1
        for key in raw:
            if key not in _KEYS:
                self.fail(self.find_in(index, key), f"unknown key {key!r} in [[action]]")
        for key in _REQUIRED:
            if key not in raw:
                self.fail(at, f"[[action]] needs {key!r}")
        action_id = raw["id"]
        if not isinstance(action_id, str) or not _ID.match(action_id):
            self.fail(self.find_in(index, "id"), "id must be lower-case letters, digits, _ . -")
        klass = raw["class"]
        if klass not in CLASSES:
            self.fail(
                self.find_in(index, "class"),
                f"class {klass!r} is not one of {', '.join(CLASSES)}",
            )
        for key in ("channel", "message", "description", "consent"):
            if key in raw and not (isinstance(raw[key], str) and raw[key]):
                self.fail(self.find_in(index, key), f"{key} must be a non-empty string")
        if not _number(raw["value"]) or raw["value"] < 0:
            self.fail(self.find_in(index, "value"), "value must be a number >= 0")
        hours = {}
        for key, default in (("cooldown_hours", 24.0), ("expiry_hours", 24.0)):
            hours[key] = raw.get(key, default)
            if not _number(hours[key]) or hours[key] < 0:
                self.fail(self.find_in(index, key), f"{key} must be a number >= 0")
        hours["response_timeout_hours"] = raw.get("response_timeout_hours", hours["expiry_hours"])
        if not _number(hours["response_timeout_hours"]) or hours["response_timeout_hours"] <= 0:
            self.fail(
                self.find_in(index, "response_timeout_hours"),
                "response_timeout_hours must be a number > 0",
            )
        prior = raw.get("acceptance_prior", DEFAULT_ACCEPTANCE_PRIOR)
        if not _number(prior) or not 0 < prior < 1:
            self.fail(self.find_in(index, "acceptance_prior"), "acceptance_prior must be in (0, 1)")
        if not isinstance(raw.get("enabled", True), bool):
            self.fail(self.find_in(index, "enabled"), "enabled must be true or false")
        when = self.conditions(index, raw["when"])
        propensity = self.propensity(index, raw.get("propensity", DEFAULT_PROPENSITY[klass]))
        consent = raw.get("consent", "marketing" if klass == "marketing" else None)
        if consent is not None and klass in ("service", "retention"):
            self.fail(self.find_in(index, "consent"), f"{klass} actions are always allowed")
        self.template(index, raw["message"])
        if not raw.get("enabled", True):
            return None
        return Action(
            id=action_id,
            action_class=cast(ActionClass, klass),
            channel=raw["channel"],
            value=float(raw["value"]),
            when=when,
            message=raw["message"],
            cooldown_ms=round(hours["cooldown_hours"] * 3_600_000),
            expiry_ms=round(hours["expiry_hours"] * 3_600_000),
            propensity=propensity,
            consent=consent,
            description=raw.get("description", ""),
            response_timeout_ms=round(hours["response_timeout_hours"] * 3_600_000),
            acceptance_prior=float(prior),
        )

    def conditions(self, index: int, raw: Any) -> tuple[Condition, ...]:
        if not isinstance(raw, list) or not raw:
            self.fail(self.find_in(index, "when"), "when must be a non-empty list of conditions")
        parsed = []
        for item in raw:
            if not isinstance(item, str):
                self.fail(self.find_in(index, "when"), f"condition {item!r} is not a string")
            try:
                parsed.append(parse_condition(item))
            except ConditionError as exc:
                self.fail(self.find_in(index, item, "when"), str(exc))
        return tuple(parsed)

    def propensity(self, index: int, raw: Any) -> str | float:
        if _number(raw) and raw >= 0:
            return float(raw)
        if isinstance(raw, str) and FIELDS.get(raw, ("",))[0] == "number":
            return raw
        self.fail(
            self.find_in(index, "propensity"),
            f"propensity {raw!r} is neither a number >= 0 nor a number field of the context",
        )

    def template(self, index: int, message: str) -> None:
        line = self.find_in(index, "message")
        try:
            names = _template_fields(message)
        except ValueError as exc:
            self.fail(line, f"message template: {exc}")
        unknown = sorted(names - set(FIELDS))
        if unknown:
            self.fail(line, f"message uses unknown field(s): {', '.join(unknown)}")
        sample = {name: _SAMPLE[kind] for name, (kind, _) in FIELDS.items()}
        try:
            message.format(**sample)
        except (ValueError, IndexError, KeyError) as exc:
            self.fail(line, f"message template: {exc}")

    # -- where in the file --------------------------------------------------------

    def find(self, needle: str, start: int = 1) -> int:
        """Return the first line (1-based) at or after ``start`` that holds ``needle``."""
        for i in range(max(0, start - 1), len(self.lines)):
            if needle in self.lines[i]:
                return i + 1
        return max(1, start)

    def find_in(self, index: int, *needles: str) -> int:
        """Return the line of the first of ``needles`` found in the ``index``-th [[action]]."""
        if index >= len(self.action_lines):
            return 1
        first = self.action_lines[index]
        later = [h for h in self.headers if h > first]
        end = later[0] if later else len(self.lines)
        for needle in needles:
            pattern = re.compile(rf"^\s*{re.escape(needle)}\s*=") if needle in _KEYS else None
            for i in range(first, end):
                line = self.lines[i]
                if pattern.match(line) if pattern else needle in line:
                    return i + 1
        return first + 1

    def fail(self, line: int, reason: str) -> NoReturn:
        raise CatalogueError(self.file, line, reason)


def _template_fields(message: str) -> set[str]:
    names = set()
    for _, name, _, _ in Formatter().parse(message):
        if name is not None:
            if not name or not name.isidentifier():
                msg = f"use {{field}} placeholders naming a context field, not {{{name}}}"
                raise ValueError(msg)
            names.add(name)
    return names


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Renderer(Formatter):
    """``str.format`` that shows unknown values as ``n/a`` and never raises on a value."""

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        return kwargs.get(str(key))

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "n/a"
        try:
            return format(value, format_spec)
        except (ValueError, TypeError):
            return str(value)
