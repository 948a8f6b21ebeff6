"""What the promotion uplift (``services.measurement.uplift``) needs of a campaign: its dates,
margin and currency, its spend, and the weekly sales of the (product, partner) pairs it promoted
before, during and after it — every sale of those pairs, whichever campaign it counts for —,
converted to the campaign's currency (README "Currencies").

Asked for a control group, also the weekly sales of the promoted products by the partners none
of the campaign's sales names (the control), and how many partners and pairs those are.

Sums read ``FINAL``, so a redelivered sale counts once. Two round trips: the campaign first
(its dates place the windows), then its sales, spend, pairs (and control) in one ``UNION ALL``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from clickhouse_connect.driver.client import Client

from services.measurement import uplift
from services.measurement.conversion import Conversion, conversion
from services.measurement.warehouse._dims import campaign_dims
from services.measurement.warehouse._sql import Stream, fetch, money
from shared.money import FxRates

_WEEK_MS = 7 * 24 * 3600 * 1000


def _text(value: str) -> str:
    return value


_PAIRS = """SELECT DISTINCT product_id, partner_id FROM sales
    WHERE campaign_id = {cid:String} AND NOT (product_id = '' AND partner_id = '')"""
"""The (product, partner) pairs of the campaign's own sales: what it promoted."""

_MS = "toUnixTimestamp64Milli(occurred_at)"


def _at(param: str) -> str:
    # compared with the column itself, so that partitions (by month) and parts are pruned
    return f"fromUnixTimestamp64Milli({{{param}:Int64}}, 'UTC')"


_PROMOTED = f"(product_id, partner_id) IN ({_PAIRS})"
_CONTROL = f"""product_id IN (SELECT product_id FROM ({_PAIRS}) WHERE product_id != '')
        AND partner_id != '' AND partner_id NOT IN (SELECT partner_id FROM ({_PAIRS}))"""
"""The control: sales of the promoted products by partners none of the campaign's sales name."""
_IN_WINDOWS = f"occurred_at >= {_at('from_ms')} AND occurred_at < {_at('to_ms')}"


def _weekly(name: str, pairs: str) -> Stream:
    """The weekly sales (window, week, currency) of the pairs ``pairs`` keeps."""
    return Stream(
        name,
        f"""SELECT multiIf({_MS} < {{start_ms:Int64}}, 'before', {_MS} < {{end_ms:Int64}},
            'during', 'after') AS k,
        intDiv({_MS} - multiIf({_MS} < {{start_ms:Int64}}, {{from_ms:Int64}},
            {_MS} < {{end_ms:Int64}}, {{start_ms:Int64}}, {{end_ms:Int64}}), {_WEEK_MS}) AS c0,
        currency AS c1, count() AS c2, sum(amount) AS c3, sum(discount_amount) AS c4
    FROM sales FINAL WHERE {_IN_WINDOWS} AND {pairs}
    GROUP BY k, c0, c1""",
        (
            ("week", int),
            ("currency", _text),
            ("units", int),
            ("revenue", money),
            ("discounts", money),
        ),
    )


_SALES = _weekly("sales", _PROMOTED)
_CONTROL_SALES = _weekly("control", _CONTROL)
_CONTROL_COUNT = Stream(
    "control_count",
    f"""SELECT '' AS k, uniqExact(partner_id) AS c0, uniqExact(product_id, partner_id) AS c1
    FROM sales FINAL WHERE {_IN_WINDOWS} AND {_CONTROL}""",
    (("partners", int), ("pairs", int)),
)
_SPEND = Stream(
    "spend",
    f"""SELECT currency AS k, sum(amount) AS c0 FROM spend FINAL
    WHERE campaign_id = {{cid:String}} AND occurred_at < {_at("as_of_ms")} GROUP BY k""",
    (("spend", money),),
)
_PAIR_COUNT = Stream("pairs", f"SELECT '' AS k, count() AS c0 FROM ({_PAIRS})", (("pairs", int),))


@dataclass(frozen=True)
class UpliftInputs:
    """A campaign's dimensions and what its uplift is computed from, amounts in ``currency``."""

    campaign: dict[str, Any]
    """The campaign's latest state (name, currency, start_date, end_date, gross_margin …)."""
    pairs: int
    """How many (product, partner) pairs it promoted."""
    cost: Decimal | None
    sales: list[uplift.WeekSales]
    missing_rates: list[str]
    """Currencies of its spend or of those sales with no rate to its currency."""
    control: list[uplift.WeekSales] | None = None
    """The control partners' weekly sales (``None``: not asked for)."""
    control_partners: int = 0
    control_pairs: int = 0


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _weeks(rows: list[tuple[str, dict[str, Any]]], to: Conversion) -> list[uplift.WeekSales]:
    """The weekly sales of ``rows`` summed over currencies, converted with ``to``."""
    weeks: dict[tuple[str, int], dict[str, Any]] = defaultdict(
        lambda: {"units": 0, "revenue": Decimal(0), "discounts": Decimal(0)}
    )
    for window, fields in rows:
        week = weeks[window, fields["week"]]
        week["units"] += fields["units"]
        for name in ("revenue", "discounts"):
            amount = to.convert(fields[name], source=fields["currency"])
            week[name] = None if week[name] is None or amount is None else week[name] + amount
    return [
        uplift.WeekSales(window=cast(uplift.Window, w), week=n, **fields)
        for (w, n), fields in sorted(weeks.items())
    ]


def uplift_inputs(
    client: Client,
    *,
    campaign_id: str,
    fx: FxRates,
    as_of: dt.datetime,
    weeks_before: int,
    weeks_after: int,
    control: bool = False,
) -> UpliftInputs | None:
    """The campaign's spend (whenever booked) and the weekly sales of its pairs in its before /
    during / after windows, both up to ``as_of``, in its currency — with ``control``, the
    control partners' weekly sales too; ``None`` for an unknown campaign."""
    found = campaign_dims(client, where="campaign_id = {cid:String}", params={"cid": campaign_id})
    if not found:
        return None
    campaign = found[0]
    bounds = uplift.windows(
        start_date=campaign["start_date"],
        end_date=campaign["end_date"],
        weeks_before=weeks_before,
        weeks_after=weeks_after,
    )
    params = {
        "cid": campaign_id,
        "from_ms": _ms(bounds["before"].start),
        "start_ms": _ms(bounds["during"].start),
        "end_ms": _ms(bounds["after"].start),
        "to_ms": _ms(min(bounds["after"].end, as_of)),
        "as_of_ms": _ms(as_of),
    }
    branches = [(_SALES, params), (_SPEND, params), (_PAIR_COUNT, params)]
    if control:
        branches += [(_CONTROL_SALES, params), (_CONTROL_COUNT, params)]
    sales, spend, pairs, *others = fetch(client, branches)
    currencies = {f["currency"] for _, f in sales} | {c for c, _ in spend}
    currencies |= {f["currency"] for _, f in others[0]} if others else set()
    to = conversion(currencies=currencies, target=campaign["currency"], fx=fx)
    cost: Decimal | None = Decimal(0)
    for currency, fields in spend:
        amount = to.convert(fields["spend"], source=currency)
        cost = None if cost is None or amount is None else cost + amount
    counts = others[1][0][1] if others and others[1] else {"partners": 0, "pairs": 0}
    return UpliftInputs(
        campaign=campaign,
        pairs=pairs[0][1]["pairs"] if pairs else 0,
        cost=cost,
        sales=_weeks(sales, to),
        missing_rates=list(to.missing),
        control=_weeks(others[0], to) if others else None,
        control_partners=counts["partners"],
        control_pairs=counts["pairs"],
    )
