"""Amounts of several currencies in one scope, converted or kept apart — pure, no I/O.

Within a campaign every amount is in the campaign's currency (ingest converts the others or
dead-letters them); a scope spanning campaigns — a channel, the company, a campaign's peers — may
hold several. The warehouse then measures each currency's *share* of the scope on its own (the
amounts in that currency; the leads, clicks … of that currency's campaigns), and this module
converts each share's sums to the reporting currency with the configured rates and adds them up
(README "Currencies"). The scope's counts stay its own, so every ratio is computed from
converted sums and whole counts, never averaged over currencies.

An amount with a part in a currency that has no rate is not added at all: it is ``None``, and
so is every KPI computed from it (``domain.compute_kpis``); the shares still answer on their
own, each in its currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.money import CurrencyNotConvertible, FxRates

AMOUNTS: tuple[str, ...] = ("spend", "revenue", "gross_profit", "discounts", "ltv_gross_profit")
"""The ``Measures`` fields that are sums of amounts."""

SCOPE_LTV = "scope_ltv_gross_profit"
"""A share's own field: the gross profit in its currency of every customer of the scope's LTV
cohort. (Its ``ltv_gross_profit`` counts only the customers whose first sale is in it, so that
the share's LTV is one of its currency; the scope's LTV needs all of them.)"""


@dataclass(frozen=True)
class Conversion:
    """How a scope's currencies convert to the reporting currency ``currency``."""

    currency: str
    fx: FxRates
    rates: dict[str, Decimal] = field(default_factory=dict)
    """Currency → what one unit of it is worth in ``currency`` (``currency`` itself left out)."""
    missing: tuple[str, ...] = ()
    """The currencies with amounts in the scope and no rate to ``currency``, sorted."""

    def convert(self, amount: Decimal, *, source: str) -> Decimal | None:
        """``amount`` in ``source`` expressed in the reporting currency (unrounded); ``None``
        without a rate (zero needs none)."""
        if not amount:
            return amount
        try:
            return self.fx.convert(amount, source=source, target=self.currency)
        except CurrencyNotConvertible:
            return None

    def summary(self) -> dict[str, Any]:
        """The answer's currency fields: the reporting currency, the rates used, and the
        currencies whose amounts could not be converted."""
        return {
            "currency": self.currency,
            "fx_rates": dict(self.rates),
            "missing_rates": list(self.missing),
        }


def conversion(*, currencies: Iterable[str], target: str, fx: FxRates) -> Conversion:
    """The rates from each of ``currencies`` (those holding amounts) to ``target``."""
    rates: dict[str, Decimal] = {}
    missing: list[str] = []
    for currency in sorted(set(currencies) - {target}):
        try:
            rate = fx.convert(Decimal(1), source=currency, target=target)
        except CurrencyNotConvertible:
            missing.append(currency)
        else:
            rates[currency] = Decimal(format(rate, "f"))  # never in exponent notation
    return Conversion(currency=target, fx=fx, rates=rates, missing=tuple(missing))


def _nonzero(value: Any) -> bool:
    if isinstance(value, tuple):
        return any(value)
    return bool(value)


def holds_amounts(fields: Mapping[str, Any]) -> bool:
    """Whether a share's measure fields hold any amount other than zero."""
    return any(_nonzero(fields.get(name)) for name in (*AMOUNTS, SCOPE_LTV))


def holds_anything(fields: Mapping[str, Any]) -> bool:
    """Whether a share's measure fields hold anything at all (an amount or a count)."""
    return any(_nonzero(value) for value in fields.values())


def own_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A share's ``Measures`` fields (its part of the scope's LTV left out)."""
    return {name: value for name, value in fields.items() if name != SCOPE_LTV}


def _total(amounts: Iterable[tuple[str, Decimal]], *, conversion: Conversion) -> Decimal | None:
    total: Decimal | None = Decimal(0)
    for currency, amount in amounts:
        converted = conversion.convert(amount, source=currency)
        total = None if total is None or converted is None else total + converted
    return total


def converted_amounts(
    shares: Mapping[str, Mapping[str, Any]], *, conversion: Conversion
) -> dict[str, Decimal | None]:
    """The scope's amounts in the reporting currency: each share's sums converted, then added
    (the LTV's from every customer of the scope's cohort); ``None`` where a part has no rate."""
    out: dict[str, Decimal | None] = {}
    for name in AMOUNTS:
        parts = []
        for currency, fields in shares.items():
            source = SCOPE_LTV if name == "ltv_gross_profit" and SCOPE_LTV in fields else name
            parts.append((currency, Decimal(fields.get(source, 0))))
        out[name] = _total(parts, conversion=conversion)
    return out


def converted_budget(budgets: Mapping[str, Decimal], *, conversion: Conversion) -> Decimal | None:
    """The sum of per-currency budgets in the reporting currency; ``None`` without any budget
    or where a part has no rate."""
    if not budgets:
        return None
    return _total(budgets.items(), conversion=conversion)
