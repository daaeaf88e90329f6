"""encode: output models -> (kind, Emitted) with their Kafka key, id and JSON bytes.

The JSON is written by orjson straight from the model's values when they are of the
exact types its fields declare (:func:`to_json`): the bytes pydantic's
``model_dump_json`` gives, at a third of the cost. Anything else (a value of another
type, which pydantic would convert, or one orjson does not know) goes through
``model_dump_json`` itself; ``tests/flows/steps/test_encode.py`` holds the two equal.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from operator import itemgetter
from typing import Any, Union, get_args, get_origin

import orjson
from pydantic import BaseModel

from flows import metrics
from flows.records import HouseholdOut, Tombstone
from schemas.cloudevents import OUTPUT_TYPES, output_attributes, output_headers
from schemas.ids import output_id
from schemas.outputs import (
    Alert,
    DeadLetter,
    DecisionSummary,
    IdentityErasure,
    IdentityMerge,
    KeyDrivers,
    NextBestAction,
    NpsWindow,
    ProfileSnapshot,
)
from schemas.records import Emitted

Output = (
    NextBestAction
    | Alert
    | NpsWindow
    | KeyDrivers
    | DecisionSummary
    | IdentityMerge
    | IdentityErasure
    | ProfileSnapshot
    | DeadLetter
    | Tombstone
    | HouseholdOut
)
Encoded = tuple[str, Emitted]

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
#: What pydantic's serializers convert rather than write as they are: an int or a bool
#: in a float field (``1`` -> ``1.0``), a bool in an int field (``true`` -> ``1``). Any
#: other value, of the field's type or not, comes out as orjson writes it (pydantic
#: infers its type and warns), and a value orjson does not know makes it raise.
_CONVERTED: dict[type, frozenset[type]] = {float: frozenset({int, bool}), int: frozenset({bool})}


class _Plan:
    """Which fields of an output model need their values' types checked, and how."""

    __slots__ = ("_groups", "names", "scalars", "values")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        #: (field, types pydantic would convert there), for a number field
        self.scalars: list[tuple[str, frozenset[type]]] = []
        #: the same for the values of a ``dict[str, number]`` field
        self.values: list[tuple[str, frozenset[type]]] = []
        self._groups: list[tuple[Callable[[dict[str, Any]], tuple[Any, ...]], frozenset[type]]] = []

    def freeze(self) -> _Plan:
        """Group the number fields by what is converted in them: one getter per group."""
        by_types: dict[frozenset[type], list[str]] = {}
        for name, converted in self.scalars:
            by_types.setdefault(converted, []).append(name)
        for converted, names in by_types.items():
            getter = itemgetter(*names) if len(names) > 1 else _one(names[0])
            self._groups.append((getter, converted))
        return self

    def writes_as_pydantic(self, values: dict[str, Any]) -> bool:
        for getter, converted in self._groups:
            if not converted.isdisjoint(map(type, getter(values))):
                return False
        for name, converted in self.values:
            field = values[name]
            if type(field) is dict and not converted.isdisjoint(map(type, field.values())):
                return False
        return True


def _one(name: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return lambda values: (values[name],)


def _numbers_in(annotation: Any) -> bool:
    return annotation in _CONVERTED or any(_numbers_in(arg) for arg in get_args(annotation))


def _plan(cls: type[BaseModel]) -> _Plan | None:
    """Say what to check before orjson writes a ``cls``; None: leave it to pydantic."""
    decorators = cls.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers or decorators.computed_fields:
        return None
    if cls.model_config.get("extra") != "forbid":
        return None
    plan = _Plan(tuple(cls.model_fields))
    for name, field in cls.model_fields.items():
        if field.serialization_alias or field.alias or field.exclude:
            return None
        annotation = field.annotation
        if not _numbers_in(annotation):
            continue  # str, bool, datetime, Literal, Any and containers of them
        args = tuple(arg for arg in get_args(annotation) if arg is not type(None))
        if get_origin(annotation) in (Union, types.UnionType) and len(args) == 1:
            annotation = args[0]  # X | None: None is written as null either way
        if annotation in _CONVERTED:
            plan.scalars.append((name, _CONVERTED[annotation]))
        elif get_origin(annotation) is dict and get_args(annotation)[1] in _CONVERTED:
            plan.values.append((name, _CONVERTED[get_args(annotation)[1]]))
        else:
            return None  # e.g. list[float]: not needed by any output yet
    return plan.freeze()


_PLANS: dict[type[BaseModel], _Plan | None] = {}


def to_json(model: BaseModel) -> bytes:
    """``model.model_dump_json().encode()``, written by orjson when the values allow it."""
    cls = type(model)
    try:
        plan = _PLANS[cls]
    except KeyError:
        plan = _PLANS[cls] = _plan(cls)
    if plan is not None:
        values = model.__dict__
        if tuple(values) == plan.names and plan.writes_as_pydantic(values):
            try:
                return orjson.dumps(values, option=_OPTIONS)
            except TypeError:
                pass  # a value orjson does not write: pydantic does
    return model.model_dump_json().encode()


def _route(model: Output) -> tuple[str, str, str]:  # noqa: PLR0911 (one case per output type)
    """(kind, key, id): keys keep one customer's (or touchpoint's) outputs in order."""
    match model:
        case ProfileSnapshot():
            out_id = output_id("profile", model.customer_id, model.version)
            return "profiles", model.customer_id, out_id
        case NextBestAction():
            return "nba", model.customer_id, model.id
        case Alert():
            return "alerts", model.customer_id or model.touchpoint or model.kind, model.id
        case NpsWindow():
            return "nps", model.touchpoint, model.id
        case KeyDrivers():
            return "insights", model.touchpoint or "", model.id
        case DecisionSummary():
            return "decisions", "decisions", model.id
        case IdentityMerge():
            return "identity", model.survivor_id, model.id
        case IdentityErasure():
            return "identity", model.customer_id, model.id
        case DeadLetter():
            return "dlq", model.id, model.id
        case Tombstone():
            return "profiles", model.customer_id, model.cause_id
        case HouseholdOut():
            return "households", model.household_id, ""


def _household(out: HouseholdOut) -> list[Encoded]:
    """Encode a household for the compacted ``cx.households`` topic (None: a tombstone).

    Its id is derived from its content, so the same household state has the same id.
    """
    key, value = out.household_id, None
    if out.snapshot is None:
        out_id = output_id("household_gone", key, out.time.isoformat())
        ce = output_headers(OUTPUT_TYPES["households_tombstone"], out_id, key, out.time, data=False)
    else:
        value = to_json(out.snapshot)
        out_id = output_id("household", key, value.decode())
        ce = output_headers(OUTPUT_TYPES["households"], out_id, key, out.snapshot.last_seen)
    headers: tuple[tuple[str, bytes], ...] = (("cx-id", out_id.encode()), *ce)
    return [("households", Emitted("households", key, out_id, value, headers))]


def encode(model: Output) -> list[Encoded]:
    """Serialise one output; the kind doubles as the stream key for file sinks.

    A :class:`~flows.records.Tombstone` (an erased customer, or a merged-away id whose
    events now count in the survivor's profile) is a message with no value on the
    compacted profiles topic, so the profile disappears there too; it carries the
    merge's or erasure's id.
    """
    if isinstance(model, HouseholdOut):
        return _household(model)
    kind, key, out_id = _route(model)
    if isinstance(model, Alert):
        metrics.count_alert(model.kind)
    headers: tuple[tuple[str, bytes], ...] = (("cx-id", out_id.encode()),)
    if isinstance(model, DeadLetter):
        headers += (("cx-reason", model.reason.encode()),)
    if isinstance(model, Tombstone):
        deleted = output_headers(
            OUTPUT_TYPES["profiles_tombstone"], out_id, key, model.time, data=False
        )
        return [(kind, Emitted(kind, key, out_id, None, headers + deleted))]
    # CloudEvents binary-mode headers (schemas.cloudevents), the value unchanged
    ce_type, ce_time, subject = output_attributes(model)
    ce = output_headers(ce_type, out_id, subject or key, ce_time)
    return [(kind, Emitted(kind, key, out_id, to_json(model), headers + ce))]
