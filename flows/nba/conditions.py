"""Rule conditions: ``"field op value"`` strings over the decision context.

A condition names a field of :data:`flows.nba.context.FIELDS`, an operator
and a literal::

    nps <= 6                    churn >= 0.7            churn_ready == true
    nps_group == "promoter"     stage in ["purchase", "loyalty"]
    event_type like "cx.*.case.opened"                  segment != seg-0

Operators: ``< <= > >=`` (numbers), ``== !=`` (any kind), ``in`` / ``not in``
(a list of literals), ``like`` (a shell-style pattern over text). Literals are
numbers, ``true`` / ``false``, quoted strings or bare words. A field whose
value is unknown (``None``) satisfies no condition, whatever the operator:
``last_nps != 10`` does not hold for a customer who never answered.

Unknown fields, unknown operators and literals of the wrong kind are
:class:`ConditionError` s when the catalogue is loaded, not when a rule runs.

>>> c = parse_condition("nps <= 6")
>>> c.test({"nps": 3}), c.test({"nps": 9}), c.test({"nps": None})
(True, False, False)
>>> c.explain({"nps": 3})
'nps=3 <= 6'
>>> parse_condition('stage in [purchase, "loyalty"]').test({"stage": "loyalty"})
True
>>> parse_condition("churn >= high")
Traceback (most recent call last):
...
flows.nba.conditions.ConditionError: 'churn >= high': churn is a number; 'high' is not
>>> parse_condition("spend > 10")
Traceback (most recent call last):
...
flows.nba.conditions.ConditionError: 'spend > 10': unknown field 'spend'
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from flows.nba.context import FIELDS, Kind
from flows.records import Context

Literal_ = float | int | str | bool
_SHAPE = re.compile(
    r"^\s*(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?P<op><=|>=|==|!=|<|>|not\s+in\b|in\b|like\b)\s*(?P<value>.*?)\s*$"
)
_BINARY: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "like": lambda a, b: fnmatchcase(str(a), b),
}
_ORDERED = frozenset({"<", "<=", ">", ">="})
_OPERATORS = ", ".join(_BINARY)


class ConditionError(ValueError):
    """A condition that cannot be understood; the message says why."""


@dataclass(frozen=True)
class Condition:
    """One parsed condition (see the module docstring)."""

    text: str
    field: str
    op: str
    value: Literal_ | tuple[Literal_, ...]

    def test(self, ctx: Context) -> bool:
        actual = ctx.get(self.field)
        if actual is None:
            return False
        return _BINARY[self.op](actual, self.value)

    def compiled(self) -> Callable[[Context], bool]:
        """Return :meth:`test` as a closure over the field, operator and literal.

        >>> parse_condition("nps <= 6").compiled()({"nps": 3})
        True
        """
        name, value, compare = self.field, self.value, _BINARY[self.op]

        def test(ctx: Context) -> bool:
            actual = ctx.get(name)
            return actual is not None and compare(actual, value)

        return test

    def explain(self, ctx: Context) -> str:
        """Return a reason code: the field's value against the threshold, e.g. ``nps=3 <= 6``."""
        value = self.value
        shown = "[" + ", ".join(map(_show, value)) + "]" if isinstance(value, tuple) else value
        return f"{self.field}={_show(ctx.get(self.field))} {self.op} {_show(shown)}"


def all_of(conditions: Sequence[Condition]) -> Callable[[Context], bool]:
    """Return one test of a rule: whether every condition holds (checked in order).

    The same answer as ``all(c.test(ctx) for c in conditions)``, without a generator and
    a method call per condition (the decide step asks it of every action and event).

    >>> rule = all_of([parse_condition("nps <= 6"), parse_condition("stage != churned")])
    >>> rule({"nps": 3, "stage": "usage"}), rule({"nps": 3, "stage": "churned"}), rule({})
    (True, False, False)
    """
    tests = tuple(c.compiled() for c in conditions)
    if len(tests) == 1:
        return tests[0]

    def holds(ctx: Context) -> bool:
        for test in tests:  # noqa: SIM110 (a loop: no generator per event on the hot path)
            if not test(ctx):
                return False
        return True

    return holds


def parse_condition(text: str) -> Condition:
    """Parse and check one condition; raise :class:`ConditionError` if it is wrong."""
    match = _SHAPE.match(text)
    if match is None:
        msg = f"{text!r}: not 'field operator value' (operators: {_OPERATORS})"
        raise ConditionError(msg)
    name, op, raw = match["field"], re.sub(r"\s+", " ", match["op"]), match["value"]
    if name not in FIELDS:
        msg = f"{text!r}: unknown field {name!r}"
        raise ConditionError(msg)
    if not raw:
        msg = f"{text!r}: no value after {op!r}"
        raise ConditionError(msg)
    kind = FIELDS[name][0]
    value: Literal_ | tuple[Literal_, ...]
    if op in ("in", "not in"):
        if not (raw.startswith("[") and raw.endswith("]")):
            msg = f"{text!r}: {op!r} needs a list, e.g. [a, b]"
            raise ConditionError(msg)
        items = [item.strip() for item in raw[1:-1].split(",") if item.strip()]
        value = tuple(_literal(text, name, kind, item) for item in items)
    else:
        value = _literal(text, name, kind, raw)
    if op in _ORDERED and kind != "number":
        msg = f"{text!r}: {op!r} compares numbers; {name} is {kind}"
        raise ConditionError(msg)
    if op == "like" and kind != "text":
        msg = f"{text!r}: 'like' matches text; {name} is {kind}"
        raise ConditionError(msg)
    return Condition(text, name, op, value)


def _literal(text: str, name: str, kind: Kind, raw: str) -> Literal_:
    if len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "\"'":
        word: str | None = raw[1:-1]
    else:
        word = None
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            msg = f"{text!r}: {name} is a number; {raw!r} is not"
            raise ConditionError(msg) from None
        return int(number) if number.is_integer() else number
    if kind == "bool":
        if raw.lower() not in ("true", "false"):
            msg = f"{text!r}: {name} is true or false; {raw!r} is not"
            raise ConditionError(msg)
        return raw.lower() == "true"
    if word is None:
        if not re.fullmatch(r"[A-Za-z0-9_.*?:/\-]+", raw):
            msg = f"{text!r}: quote the text {raw!r}"
            raise ConditionError(msg)
        word = raw
    return word


def _show(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
