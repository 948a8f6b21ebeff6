"""The query parameters ``GET /api/v1/kpis/series`` takes for the trade-marketing scopes —
brand, partner, product, region — and their checks; the route itself is ``api.kpi_series``.

A brand's or partner's KPIs over a whole period are its row of ``GET /api/v1/kpis/sales``
(``by=brand|partner``): no route of their own repeats them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from services.measurement.warehouse.trade_series import TRADE_SCOPES
from shared.errors import DomainError
from shared.events.envelope import Name

SeriesId = Name
"""A campaign or plan id, a channel, or a brand, partner id, product id or region as the sales
carry it (up to 200 characters: brands and regions are names)."""
SeriesSaleKind = Annotated[
    Literal["sell_in", "sell_out"] | None,
    Query(
        description="Scopes brand, partner, product and region only: count only the sales to "
        "trade partners (sell_in) or theirs to consumers (sell_out); spend and leads are "
        "neither and always count."
    ),
]


def check_series_args(*, scope: str, sale_kind: str | None) -> None:
    """422 naming ``sale_kind`` when it is given for a scope whose series has no sales kinds."""
    if sale_kind is not None and scope not in TRADE_SCOPES:
        raise DomainError(
            f"only for scopes {', '.join(TRADE_SCOPES)}, not {scope}",
            field="sale_kind",
            status_code=422,
            location="query",
        )
