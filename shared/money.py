"""Money across currencies: configured rates to the platform's default currency (SPEC §3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


class CurrencyNotConvertible(ValueError):
    """No rate is configured for a currency that would need one."""


def cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half-up to cents."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class FxRates:
    """Rates to the base currency (``rates["EUR"] = 1.08`` means 1 EUR = 1.08 base units)."""

    base: str
    rates: Mapping[str, Decimal]

    def rate(self, currency: str) -> Decimal | None:
        """The rate of ``currency`` to the base currency; None when none is configured."""
        if currency == self.base:
            return Decimal(1)
        rate = self.rates.get(currency)
        return rate if rate is not None and rate > 0 else None

    def convert(self, amount: Decimal, *, source: str, target: str) -> Decimal:
        """``amount`` in ``source`` expressed in ``target`` (unrounded)."""
        if source == target:
            return amount
        source_rate, target_rate = self.rate(source), self.rate(target)
        if source_rate is None or target_rate is None:
            missing = source if source_rate is None else target
            raise CurrencyNotConvertible(
                f"cannot convert {source} to {target}: no FX rate configured for {missing} "
                f"(rates are relative to {self.base})"
            )
        return amount * source_rate / target_rate


def in_currency(
    amounts: Mapping[str, Decimal], *, currency: str, fx: FxRates
) -> tuple[Decimal, dict[str, Decimal]]:
    """The amounts (currency → amount) converted to ``currency`` and added (unrounded), and
    those without a rate, apart."""
    total, unconverted = Decimal(0), {}
    for source, amount in sorted(amounts.items()):
        try:
            total += fx.convert(amount, source=source, target=currency)
        except CurrencyNotConvertible:
            unconverted[source] = amount
    return total, unconverted
