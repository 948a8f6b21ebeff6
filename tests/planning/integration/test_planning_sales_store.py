"""The sales planning keeps from ``mrm.sales.v1``, on SQLite and PostgreSQL: each event added
to its month's total once — repeated within a batch, in a later batch, or in a batch that
failed —, totals summed per attribution, and the months a query asks for."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from services.planning import sales_store
from services.planning.sales_store import SaleRow
from services.planning.store import Store
from shared.sales_attribution import SaleGroup
from shared.sql import make_engine

pytestmark = pytest.mark.integration
D = Decimal


def _sale(amount: str, day: dt.date, **codes: str) -> SaleRow:
    return SaleRow(
        event_id=uuid.uuid4(),
        occurred_at=dt.datetime.combine(day, dt.time(23, 30), tzinfo=dt.UTC),
        amount=D(amount),
        currency=codes.pop("currency", "EUR"),
        **codes,
    )


def test_each_sale_is_added_to_its_total_once(database_url: str) -> None:
    engine = make_engine(database_url)
    db = Store(engine)
    db.create_schema()
    march, april = dt.date(2026, 3, 31), dt.date(2026, 4, 1)
    first = _sale("100.00", march, rep_id="rep-a", brand="X")
    again = _sale("50.25", march, rep_id="rep-a", brand="X")
    other = _sale("7.00", march, rep_id="rep-a", brand="X", currency="USD")
    late = _sale("1.00", april, rep_id="rep-a", brand="X")
    with db.unit_of_work() as uow:
        assert sales_store.record_sales(session=uow.session, sales=[first, again, first]) == 2
    with db.unit_of_work() as uow:
        assert sales_store.record_sales(session=uow.session, sales=[again, other, late]) == 2
    with pytest.raises(RuntimeError), db.unit_of_work() as uow:  # rolled back: not kept
        sales_store.record_sales(session=uow.session, sales=[_sale("9.00", march)])
        raise RuntimeError("the batch failed")
    with db.unit_of_work() as uow:
        assert sales_store.record_sales(session=uow.session, sales=[first, other]) == 0
        assert sales_store.record_sales(session=uow.session, sales=[_sale("2.00", march)]) == 1
    with db.reading() as session:
        groups = sales_store.sale_groups(session=session, months=["2026-01", "2026-03"])
        assert sales_store.sale_groups(session=session, months=["2025-03"]) == []
    assert sorted(groups, key=lambda g: (g.currency, g.amount)) == [
        SaleGroup(amount=D("2.00"), currency="EUR"),
        SaleGroup(amount=D("150.25"), currency="EUR", rep_id="rep-a", brand="X"),
        SaleGroup(amount=D("7.00"), currency="USD", rep_id="rep-a", brand="X"),
    ]
    engine.dispose()
