"""A quick, conservative check that a resource is valid, derived from the
fhir.resources models themselves.

Validating with the models costs about a quarter of a millisecond per
Patient or Immunization, most of it fhir_core's Python validators running on
every element. `quick_accepts(model, data)` walks the same structure with a
plan read once per model class from its pydantic fields: which keys exist,
which are lists, which are required, which choice groups (`value[x]`) allow
one member, and for each primitive the very validator the model uses
(a pydantic `TypeAdapter` of the field's annotation, its results kept per
value). Anything it does not fully understand, it declines: a `null`, an
empty list or object, a primitive's `_extension` sibling, a contained
resource, a key it does not know. It never answers "valid" where the model
would refuse; when it declines, `validate_resource` asks the model, which
also writes the error messages. `tests/unit/fhir/test_quick_check.py` holds it
to that on thousands of altered resources.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import TypeAdapter

from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase

_CACHE_LIMIT = 100_000  # primitive results kept per process; most values (codes, systems, dates) repeat


@dataclass(frozen=True)
class _Field:
    many: bool  # a JSON array in FHIR
    model: type[FHIRAbstractModel] | None  # a complex element's class; None for a primitive
    primitive: Callable[[Any], bool] | None


@dataclass(frozen=True)
class _Plan:
    resource_type: str | None  # expected `resourceType` (resources only)
    fields: dict[str, _Field]  # by JSON key
    required: tuple[str, ...]
    choices: tuple[tuple[tuple[str, ...], bool], ...]  # (members, one is required)


_plans: dict[type, _Plan | None] = {}
_primitive_results: dict[tuple[int, type, Any], bool] = {}


def quick_accepts(model: type[FHIRAbstractModel], data: Any) -> bool:
    """True only if `model.model_validate(data)` would succeed; False when
    invalid or when the quick check cannot tell."""
    plan = _plan(model)
    if plan is None or not isinstance(data, dict) or not data:
        return False
    if plan.resource_type is not None:
        if data.get("resourceType") != plan.resource_type:
            return False
    elif "resourceType" in data:
        return False
    return _accepts(plan, data)


def _accepts(plan: _Plan, data: dict) -> bool:
    fields = plan.fields
    for key, value in data.items():
        if key == "resourceType" and plan.resource_type is not None:
            continue
        spec = fields.get(key)
        if spec is None or value is None:
            return False
        if spec.many:
            if type(value) is not list or not value:
                return False
            for item in value:
                if not _value_accepted(spec, item):
                    return False
        elif type(value) is list or not _value_accepted(spec, value):
            return False
    for key in plan.required:
        if key not in data:
            return False
    for members, required in plan.choices:
        present = sum(1 for key in members if key in data)
        if present > 1 or (required and present == 0):
            return False
    return True


def _value_accepted(spec: _Field, value: Any) -> bool:
    if spec.model is not None:
        if type(value) is not dict or not value or "resourceType" in value:
            return False
        plan = _plan(spec.model)
        return plan is not None and _accepts(plan, value)
    if value is None or type(value) in (list, dict):
        return False
    return spec.primitive(value)


def _plan(model: type) -> _Plan | None:
    """The model's plan, built on first use; None for a class the check does not cover."""
    if model not in _plans:
        _plans[model] = _build_plan(model)
    return _plans[model]


def _build_plan(model: type) -> _Plan | None:
    if not (isinstance(model, type) and issubclass(model, FHIRAbstractModel)):
        return None
    fields: dict[str, _Field] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        if name == "fhir_comments" or name.endswith("__ext") or key.startswith("_"):
            continue  # their keys are declined: primitive extensions and comments go to the model
        spec = _field(info.annotation, info.metadata)
        if spec is not None:
            fields[key] = spec
    blank = model.model_construct()
    aliases = {name: (info.alias or name) for name, info in model.model_fields.items()}
    required = {aliases[name] for name, info in model.model_fields.items() if info.is_required()}
    required |= {aliases[name] for name, _ext in blank.get_required_fields()}
    if not required <= set(fields):
        return None  # a required key of a kind the check declines: never quick
    choices = []
    for members in blank.get_one_of_many_fields().values():
        extra = model.model_fields[members[0]].json_schema_extra or {}
        choices.append((tuple(aliases[m] for m in members), extra.get("one_of_many_required") is True))
    resource_type = model.__resource_type__ if model.has_resource_base() else None
    return _Plan(resource_type, fields, tuple(sorted(required)), tuple(choices))


def _field(annotation: Any, metadata: list) -> _Field | None:
    inner = _without_none(annotation)
    many = typing.get_origin(inner) in (list, typing.List)
    if many:
        (inner,) = typing.get_args(inner)
    if isinstance(inner, type) and issubclass(inner, FhirBase):
        element = inner.get_model_klass()
        if element.has_resource_base():
            return None  # contained resources pick their class by resourceType: the model's job
        return _Field(many, element, None)
    if many and metadata:
        return None  # list-level constraints would apply to the list, not to each item
    return _Field(many, None, _primitive_check(typing.Annotated[inner, *metadata] if metadata else inner))


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _primitive_check(annotation: Any) -> Callable[[Any], bool]:
    adapter = TypeAdapter(annotation)
    slot = id(adapter)

    def check(value: Any) -> bool:
        key = (slot, type(value), value)
        try:
            known = _primitive_results.get(key)
        except TypeError:  # an unhashable value (not from JSON): no answer to keep
            return _validates(adapter, value)
        if known is None:
            known = _validates(adapter, value)
            if len(_primitive_results) >= _CACHE_LIMIT:
                _primitive_results.clear()
            _primitive_results[key] = known
        return known

    check.adapter = adapter  # kept alive with the check, so its id stays unique
    return check


def _validates(adapter: TypeAdapter, value: Any) -> bool:
    try:
        adapter.validate_python(value)
        return True
    except Exception:  # noqa: BLE001 - whatever the validator raises, the model will raise and word it
        return False
