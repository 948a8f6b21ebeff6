"""Rule-based segments — pure, no I/O: a segment's rule, checked against the catalogue of the
fields it may name, and evaluated against one customer's facts (latest profile as of a day and
RFM of the sales up to it).

A rule is a list of ``conditions``, all of which must hold (AND). An item is either one
condition ``{"field", "op", "value"}`` or a group ``{"any": [condition, …]}`` that holds when
one of its conditions does (OR). Groups do not nest: a rule reads as "A and B and (C or D)".

A condition on a value the customer does not have (no profile, a field the profile left out,
no sale in the RFM window) holds only for ``ne`` and ``not_in``: "region is not EMEA" includes
a customer of unknown region, "region is EMEA" does not. Text compares exactly (case included).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from services.measurement import rfm
from shared.errors import DomainError
from shared.events.customers import CompanySize

MAX_CONDITIONS = 20
"""The most items of a rule, and the most conditions of one ``any`` group."""
MAX_VALUES = 100
"""The most values of an ``in`` / ``not_in`` list."""
MAX_TEXT = 200

TEXT_OPS = ("eq", "ne", "in", "not_in")
NUMBER_OPS = ("eq", "ne", "in", "not_in", "gte", "lte")
MONEY_OPS = ("eq", "ne", "gte", "lte")
LIST_OPS = ("in", "not_in")


@dataclass(frozen=True)
class FieldKind:
    """What values a field holds and which operators compare them."""

    name: str
    ops: tuple[str, ...]
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None


TEXT = FieldKind("text", TEXT_OPS)
SCORE = FieldKind("integer 1-5", NUMBER_OPS, low=1, high=5)
COUNT = FieldKind("integer >= 0", NUMBER_OPS, low=0, high=10**12)
MONEY = FieldKind("amount >= 0 (at most 2 decimals)", MONEY_OPS)

PROFILE_FIELDS: dict[str, FieldKind] = {
    "industry": TEXT,
    "size": FieldKind("text", TEXT_OPS, choices=get_args(CompanySize)),
    "region": TEXT,
    "age_band": TEXT,
}
RFM_FIELDS: dict[str, FieldKind] = {
    "rfm_segment": FieldKind("text", TEXT_OPS, choices=rfm.SEGMENTS),
    "recency_score": SCORE,
    "frequency_score": SCORE,
    "monetary_score": SCORE,
    "recency_days": COUNT,
    "orders": COUNT,
    "revenue": MONEY,
}
"""RFM facts of the sales in the segment's window: scores 1-5, days since the last sale,
distinct orders, revenue in the default currency."""
ATTRIBUTE = re.compile(r"^attributes\.([a-z][a-z0-9_]{0,63})$")
FIELDS: tuple[str, ...] = (*PROFILE_FIELDS, "attributes.<key>", *RFM_FIELDS)


@dataclass(frozen=True)
class Condition:
    """One checked condition: ``field`` ``op`` ``value``."""

    field: str
    op: str
    value: Any

    @property
    def uses_rfm(self) -> bool:
        """Whether the condition reads RFM facts (so the sales must be scored)."""
        return self.field in RFM_FIELDS


@dataclass(frozen=True)
class Item:
    """One item of a rule: a condition, or an ``any`` group (holds when one of its does)."""

    conditions: tuple[Condition, ...]
    group: bool = False


@dataclass(frozen=True)
class Rule:
    """A checked rule: every item must hold."""

    items: tuple[Item, ...]

    @property
    def uses_rfm(self) -> bool:
        """Whether any condition reads RFM facts."""
        return any(c.uses_rfm for item in self.items for c in item.conditions)

    @property
    def uses_profile(self) -> bool:
        """Whether any condition reads the profile."""
        return any(not c.uses_rfm for item in self.items for c in item.conditions)

    def as_json(self) -> dict[str, Any]:
        """The rule as the API writes it (values normalised: amounts as strings)."""
        out: list[dict[str, Any]] = []
        for item in self.items:
            conds = [
                {"field": c.field, "op": c.op, "value": _jsonable(c.value)} for c in item.conditions
            ]
            out.append({"any": conds} if item.group else conds[0])
        return {"conditions": out}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _fail(path: str, message: str) -> DomainError:
    return DomainError(message, field=path, status_code=422)


def _kind(field: Any, path: str) -> FieldKind:
    if not isinstance(field, str):
        raise _fail(path, "must be a text naming a field")
    if field in PROFILE_FIELDS:
        return PROFILE_FIELDS[field]
    if field in RFM_FIELDS:
        return RFM_FIELDS[field]
    if ATTRIBUTE.match(field):
        return TEXT
    raise _fail(path, f"unknown field {field!r}; one of {', '.join(FIELDS)}")


def _scalar(kind: FieldKind, value: Any, path: str) -> Any:
    if kind is MONEY:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _fail(path, f"must be an {kind.name}")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise _fail(path, f"must be an {kind.name}") from None
        if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
            raise _fail(path, f"must be an {kind.name}")
        return amount.quantize(Decimal("0.01"))
    if kind.low is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(path, f"must be an {kind.name}")
        if value < kind.low or (kind.high is not None and value > kind.high):
            raise _fail(path, f"must be an {kind.name}")
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _fail(path, f"must be a non-empty text of at most {MAX_TEXT} characters")
    if kind.choices and value not in kind.choices:
        raise _fail(path, f"must be one of {', '.join(kind.choices)}")
    return value


def check_condition(raw: Any, path: str) -> Condition:
    """A condition from its JSON form; ``DomainError`` (422) naming the path of what is wrong."""
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object with field, op and value")
    unknown = sorted(set(raw) - {"field", "op", "value"})
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", "unknown key; a condition has field, op and value")
    for key in ("field", "op", "value"):
        if key not in raw:
            raise _fail(f"{path}.{key}", "is required")
    field = raw["field"]
    kind = _kind(field, f"{path}.field")
    op = raw["op"]
    if op not in kind.ops:
        raise _fail(f"{path}.op", f"must be one of {', '.join(kind.ops)} for field {field!r}")
    value = raw["value"]
    if op in LIST_OPS:
        if not isinstance(value, list) or not value or len(value) > MAX_VALUES:
            raise _fail(f"{path}.value", f"must be a list of 1 to {MAX_VALUES} values for {op}")
        checked: Any = tuple(_scalar(kind, v, f"{path}.value.{i}") for i, v in enumerate(value))
    else:
        checked = _scalar(kind, value, f"{path}.value")
    return Condition(field=field, op=op, value=checked)


def check_rule(raw: Any, path: str = "rule") -> Rule:
    """A rule from its JSON form (``{"conditions": [...]}``); ``DomainError`` (422) naming the
    path of the first thing wrong, e.g. ``rule.conditions.1.op``."""
    if not isinstance(raw, Mapping):
        raise _fail(path, "must be an object with conditions")
    unknown = sorted(set(raw) - {"conditions"})
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", "unknown key; a rule has conditions")
    items = raw.get("conditions")
    where = f"{path}.conditions"
    if not isinstance(items, list) or not items or len(items) > MAX_CONDITIONS:
        raise _fail(where, f"must be a list of 1 to {MAX_CONDITIONS} conditions")
    out: list[Item] = []
    for i, item in enumerate(items):
        at = f"{where}.{i}"
        if isinstance(item, Mapping) and "any" in item:
            if set(item) != {"any"}:
                raise _fail(at, "an any group has only the key any")
            group = item["any"]
            if not isinstance(group, list) or not group or len(group) > MAX_CONDITIONS:
                raise _fail(f"{at}.any", f"must be a list of 1 to {MAX_CONDITIONS} conditions")
            conditions = tuple(check_condition(c, f"{at}.any.{j}") for j, c in enumerate(group))
            out.append(Item(conditions, group=True))
        else:
            out.append(Item((check_condition(item, at),)))
    return Rule(items=tuple(out))


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------

Facts = Mapping[str, Any]
"""One customer's facts: the profile fields (``attributes`` a mapping) and the RFM fields;
a missing key or ``None`` is an unknown value."""
Test = Callable[[Facts], bool]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda have, want: have == want,
    "ne": lambda have, want: have != want,
    "in": lambda have, want: have in want,
    "not_in": lambda have, want: have not in want,
    "gte": lambda have, want: have >= want,
    "lte": lambda have, want: have <= want,
}


def _getter(field: str) -> Callable[[Facts], Any]:
    attribute = ATTRIBUTE.match(field)
    if attribute:
        key = attribute.group(1)
        return lambda facts: (facts.get("attributes") or {}).get(key)
    return lambda facts: facts.get(field)


def _test(condition: Condition) -> Test:
    get, compare, want = _getter(condition.field), _COMPARE[condition.op], condition.value
    if isinstance(want, tuple):
        want = frozenset(want)
    unknown_holds = condition.op in ("ne", "not_in")

    def test(facts: Facts) -> bool:
        have = get(facts)
        if have is None:
            return unknown_holds
        return compare(have, want)

    return test


def compile_rule(rule: Rule) -> Test:
    """A function telling whether a customer's facts satisfy ``rule``."""
    items = [[_test(c) for c in item.conditions] for item in rule.items]

    def holds(facts: Facts) -> bool:
        return all(any(t(facts) for t in tests) for tests in items)

    return holds


def members(rule: Rule, customers: Mapping[str, Facts]) -> list[str]:
    """The ids of the customers whose facts satisfy ``rule``, sorted."""
    holds = compile_rule(rule)
    return sorted(cid for cid, facts in customers.items() if holds(facts))


def rfm_rule(segment: str) -> Rule:
    """The rule of an RFM segment (``rfm:<segment>``): ``rfm_segment eq <segment>``."""
    if segment not in rfm.SEGMENTS:
        raise ValueError(f"segment: must be one of {', '.join(rfm.SEGMENTS)}")
    return Rule(items=(Item((Condition("rfm_segment", "eq", segment),)),))
