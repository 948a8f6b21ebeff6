"""Sales with their optional sales units and pricing, on chDB: stored by both ingest paths
(pydantic rows and the columnar batch), read back from ``sales``; rows written before
migration 5 read ``''`` / ``NULL``; the KPIs do not depend on the new fields.

Every id is prefixed with a fresh ``unique_id`` (the chDB engine is shared by the session).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal as D
from types import SimpleNamespace
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from services.measurement import warehouse
from services.measurement.warehouse import StoredEvent, columns, schema
from shared.events import EventData, new_envelope
from shared.events.ingest import SaleCompleted
from shared.events.planning import CampaignPlanned

pytestmark = pytest.mark.integration

MARCH = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
APRIL = dt.datetime(2027, 4, 1, tzinfo=dt.UTC)
NEW_FIELDS = (
    "partner_id",
    "rep_id",
    "region",
    "product_id",
    "brand",
    "list_price",
    "discount_reason",
    "sale_kind",
    "outlet",
)
UNITS = {
    "partner_id": "partner-7",
    "rep_id": "rep-42",
    "region": "EMEA",
    "product_id": "sku-100",
    "brand": "Acme Pro",
    "list_price": D("1100.00"),
    "discount_reason": "spring promo",
    "sale_kind": "sell_out",
    "outlet": "Store 12, Lyon",
}
ABSENT = {**dict.fromkeys(NEW_FIELDS, ""), "list_price": None}
"""How the table holds a sale without the new fields."""


def stored(data: EventData, *, uid: str, name: str, offset: int) -> StoredEvent:
    """``data`` as consumed, with an event_id derived from ``uid`` and ``name``."""
    envelope = new_envelope(
        data,
        source="test",
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{uid}/{name}"),
        occurred_at=dt.datetime(2027, 3, 10, 12, tzinfo=dt.UTC),
    )
    return StoredEvent(envelope=envelope, data=data, topic=data.topic, partition=0, offset=offset)


def sales(campaign_id: str, *, with_units: bool) -> list[SaleCompleted]:
    """Three sales of two customers of ``campaign_id``; the units on all, or on none."""
    orders = (("o1", "k1", "1000.00", "100.00"), ("o2", "k1", "250.00", "0"))
    orders += (("o3", "k2", "400.00", "20.00"),)
    out = []
    for order_id, customer, amount, discount in orders:
        units: dict[str, Any] = {}
        if with_units:
            units = {**UNITS, "list_price": D(amount) + D(discount)}
            if order_id == "o2":  # only some of them
                units = {"partner_id": "partner-8", "sale_kind": "sell_in"}
        out.append(
            SaleCompleted(
                order_id=f"{order_id}-{campaign_id}",
                customer_id=f"{customer}-{campaign_id}",
                campaign_id=campaign_id,
                channel="retail",
                amount=D(amount),
                discount_amount=D(discount),
                currency="EUR",
                **units,
            )
        )
    return out


def campaign(campaign_id: str, *, uid: str) -> StoredEvent:
    """A March campaign of plan ``P-uid`` with a gross margin of 0.5."""
    data = CampaignPlanned(
        campaign_id=campaign_id,
        plan_id=f"P-{uid}",
        name=campaign_id,
        channel="retail",
        owner="ann",
        budget=D("1000"),
        currency="EUR",
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
        gross_margin=D("0.5"),
    )
    return stored(data, uid=uid, name=campaign_id, offset=0)


def insert_columnar(client: Client, events: list[StoredEvent]) -> None:
    """Insert ``events`` as the consumer does: their wire bytes through the columnar path."""
    records = [
        SimpleNamespace(topic=e.topic, value=e.envelope.to_bytes(), partition=1, offset=n)
        for n, e in enumerate(events)
    ]
    batch = columns.split(records)
    assert batch.unusual == []  # canonical messages stay columnar
    warehouse.insert_batch(client, tables=columns.to_arrow_tables(batch))


def read_back(client: Client, campaign_id: str, *, database: str = "mrm") -> dict[str, Any]:
    """order_id → the new fields as stored, for the sales of ``campaign_id``."""
    sql = f"""SELECT order_id, {", ".join(NEW_FIELDS)} FROM {database}.sales FINAL
        WHERE campaign_id = {{cid:String}} ORDER BY order_id"""
    rows = client.query(sql, parameters={"cid": campaign_id}).result_rows
    return {row[0]: dict(zip(NEW_FIELDS, row[1:], strict=True)) for row in rows}


@pytest.mark.parametrize("path", ["rows", "columnar"])
def test_sales_keep_their_units_and_pricing(
    warehouse_client: Client, unique_id: str, path: str
) -> None:
    with_units, without = f"U-{unique_id}", f"N-{unique_id}"
    events = [
        stored(sale, uid=unique_id, name=sale.order_id, offset=n)
        for n, sale in enumerate(
            [*sales(with_units, with_units=True), *sales(without, with_units=False)]
        )
    ]
    if path == "rows":
        warehouse.insert_events(warehouse_client, events=events)
    else:
        insert_columnar(warehouse_client, events)

    assert read_back(warehouse_client, with_units) == {
        f"o1-{with_units}": {**UNITS, "list_price": D("1100.00")},
        f"o2-{with_units}": {**ABSENT, "partner_id": "partner-8", "sale_kind": "sell_in"},
        f"o3-{with_units}": {**UNITS, "list_price": D("420.00")},
    }
    assert read_back(warehouse_client, without) == {f"o{n}-{without}": ABSENT for n in (1, 2, 3)}


def test_the_kpis_do_not_depend_on_the_new_fields(warehouse_client: Client, unique_id: str) -> None:
    with_units, without = f"U-{unique_id}", f"N-{unique_id}"
    events = [campaign(with_units, uid=unique_id), campaign(without, uid=unique_id)]
    for n, sale in enumerate(
        [*sales(with_units, with_units=True), *sales(without, with_units=False)]
    ):
        events.append(stored(sale, uid=unique_id, name=sale.order_id, offset=n + 1))
    warehouse.insert_events(warehouse_client, events=events)

    def kpis(campaign_id: str) -> dict[str, Any]:
        k = warehouse.campaign_kpis(
            warehouse_client, campaign_id=campaign_id, start=MARCH, end=APRIL, now=APRIL
        )
        return {key: value for key, value in k.items() if key not in ("campaign_id", "name")}

    assert kpis(with_units) == kpis(without)
    k = kpis(with_units)
    assert (k["revenue"], k["discounts"], k["orders"]) == (D("1650.00"), D("120.00"), 3)
    assert (k["gross_profit"], k["customers"], k["new_customers"]) == (D("825.00"), 2, 2)


def test_sales_stored_before_migrations_5_and_10_read_empty_and_null(
    warehouse_client: Client, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"m_{unique_id}"
    old_columns = warehouse.COLUMNS["sales"][: -len(NEW_FIELDS)]
    sale = stored(sales(f"O-{unique_id}", with_units=False)[0], uid=unique_id, name="o", offset=0)
    (old_row,) = warehouse.rows_by_table([sale])["sales"]
    try:
        with monkeypatch.context() as before:
            before.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:4])
            assert warehouse.migrate(warehouse_client, database=db) == [1, 2, 3, 4]
        warehouse_client.insert(
            f"{db}.sales", [old_row[: len(old_columns)]], column_names=old_columns
        )
        with monkeypatch.context() as upto_5:
            upto_5.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:5])
            assert warehouse.migrate(warehouse_client, database=db) == [5]
            assert warehouse.migrate(warehouse_client, database=db) == []
        # the later ones too: migration 10 adds the outlet, which reads '' as well
        later = [version for version, _, _ in schema.MIGRATIONS[5:]]
        assert 10 in later
        assert warehouse.migrate(warehouse_client, database=db) == later
        assert read_back(warehouse_client, f"O-{unique_id}", database=db) == {
            f"o1-O-{unique_id}": ABSENT
        }
    finally:
        warehouse_client.command(f"DROP DATABASE IF EXISTS {db}")
