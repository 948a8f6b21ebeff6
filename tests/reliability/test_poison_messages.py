"""No message stops a consumer: every poison message of the hardening list, each followed by a
good canary on the same partition, through every consumer that reads its topic.

The four services run in-process on the real broker and chDB. For each poison the test asserts
that every consumer group reading its topic wrote exactly one dead letter — with the original
key and bytes (a truncated prefix and ``x-original-size`` for a body too large for the DLQ), the
reason, where it came from and the group — and that each canary had its effect: spend counted
by execution and measurement, campaigns projected, proposals recorded by planning, notifications
delivered by the notifier. A flood of bad messages mixed into a batch of good ones gives exactly
one dead letter per bad message and group.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest
from poison_kit import (
    Platform,
    Sent,
    money,
    poison_with,
    read_dead_letters,
    readers_of,
    running_platform,
    spoilt,
    wait_for,
)

from shared import dlq, topics
from shared.embedded import EmbeddedBroker
from shared.events.execution import BudgetThresholdCrossed
from shared.events.ingest import AdMetricsReported, SpendRecorded
from shared.events.kpi import BudgetReallocationProposed
from shared.events.planning import CampaignPlanned, KpiTargetSet, PlanCreated
from shared.kafka import ensure_topics
from shared.topics import all_topics_with_dlq

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def poisoned_bootstrap() -> Iterator[str]:
    """A broker of this module alone: the poison it publishes (5 MB values, JSON nested 3,000
    deep …) stays off the session's shared topics, which other tests read from the start."""
    with EmbeddedBroker() as broker:
        ensure_topics(broker.bootstrap, all_topics_with_dlq(), partitions=3)
        yield broker.bootstrap


@pytest.fixture(scope="module")
def platform(poisoned_bootstrap: str, chdb_url: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with running_platform(
        bootstrap=poisoned_bootstrap,
        chdb_url=chdb_url,
        data_dir=tmp_path_factory.mktemp("reliability"),
    ) as running:
        yield running


def campaign(campaign_id: str, plan_id: str, owner: str) -> CampaignPlanned:
    return CampaignPlanned(
        campaign_id=campaign_id,
        plan_id=plan_id,
        name=f"Campaign {campaign_id}",
        channel="search",
        owner=owner,
        budget=Decimal("1000"),
        currency="USD",
        start_date=dt.date(2027, 3, 1),
        end_date=dt.date(2027, 3, 31),
    )


def spend(campaign_id: str, amount: str = "1.00") -> SpendRecorded:
    return SpendRecorded(
        campaign_id=campaign_id, channel="search", amount=Decimal(amount), currency="USD"
    )


def new_plan(platform: Platform, owner: str) -> str:
    """A plan made through planning's API (planning keeps proposals only for its own plans)."""
    response = platform.clients["planning"].post(
        "/api/v1/plans",
        json={
            "name": f"Plan of {owner}",
            "period_start": "2027-01-01",
            "period_end": "2027-12-31",
            "owner": owner,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["plan_id"])


def register_recipient(platform: Platform, recipient: str) -> None:
    response = platform.clients["notifier"].put(
        f"/api/v1/recipients/{recipient}",
        json={"channels": ["email"], "email": f"{recipient}@example.com"},
    )
    assert response.status_code in (200, 201), response.text


def assert_one_dead_letter_per_group(platform: Platform, poisons: list[Sent]) -> None:
    """Each poison has exactly one dead letter from every group reading its topic, with the
    original key and bytes and the headers that say where it came from and who rejected it."""
    expected = {
        sent: {platform.groups[service] for service in readers_of(sent.topic)} for sent in poisons
    }
    dlq_topics = sorted({topics.dlq(sent.topic) for sent in poisons})
    groups = set(platform.groups.values())

    def complete():  # type: ignore[no-untyped-def]
        letters = read_dead_letters(platform.bootstrap, dlq_topics, groups)
        if all(len(letters.of(s)) >= len(g) for s, g in expected.items()):
            return letters
        return None

    letters = wait_for(complete, timeout_s=60, what="a dead letter per poison and group")
    for sent, wanted in expected.items():
        found = letters.of(sent)
        writers = Counter(letter.headers[dlq.CONSUMER_GROUP_HEADER] for letter in found)
        assert writers == Counter(wanted), f"{sent.name} on {sent.topic}: {writers}"
        for letter in found:
            assert letter.key == sent.key, sent.name
            assert letter.headers[dlq.ERROR_HEADER], sent.name
            original = sent.value or b""
            if len(original) > dlq.MAX_BODY_BYTES:
                assert letter.headers[dlq.ORIGINAL_SIZE_HEADER] == str(len(original)), sent.name
                assert original.startswith(letter.value) and letter.value, sent.name
            else:
                assert letter.value == original, sent.name
                assert dlq.ORIGINAL_SIZE_HEADER not in letter.headers, sent.name
            if sent.value is None:
                assert letter.headers[dlq.TOMBSTONE_HEADER] == "true"


def test_every_poison_is_dead_lettered_once_per_group_and_every_canary_passes(
    platform: Platform, unique_id: str
) -> None:
    owner = f"ann-{unique_id}"
    register_recipient(platform, owner)
    plan_id = new_plan(platform, owner)
    spend_campaign = f"c-{unique_id}-0"
    produce = platform.producer
    produce.event(campaign(spend_campaign, plan_id, owner))
    poisons: list[Sent] = []

    # mrm.spend.v1 (execution, measurement): a tombstone and the generic poisons, each followed
    # by 1.00 of spend on the same key (so the same partition)
    spend_poisons = [
        ("tombstone", None),
        *spoilt(spend(spend_campaign), text_field="channel"),
    ]
    for name, value in spend_poisons:
        poisons.append(produce.send(topics.SPEND, value, key=spend_campaign, name=name))
        produce.event(spend(spend_campaign))

    # mrm.ad-metrics.v1 (measurement): impressions beyond any column type
    metrics = AdMetricsReported(
        campaign_id=spend_campaign, channel="search", impressions=10, clicks=1
    )
    poisons.append(
        produce.send(
            topics.AD_METRICS,
            poison_with(metrics, impressions=2**64 + 5),
            key=spend_campaign,
            name="impressions 2^64 + 5",
        )
    )
    produce.event(metrics)

    # mrm.planning.v1 (execution, measurement, notifier): each poison keyed like the campaign
    # that follows it as the canary
    planned: list[str] = []
    planning_poisons = [
        (
            "plan.created with period_start 0001-01-01",
            poison_with(
                PlanCreated(
                    plan_id=f"p-{unique_id}-x",
                    name="Ancient",
                    period_start=dt.date(2027, 1, 1),
                    period_end=dt.date(2027, 12, 31),
                    currency="USD",
                    owner=owner,
                ),
                period_start="0001-01-01",
            ),
        ),
        (
            'kpi_target.set with target "1E+400"',
            poison_with(
                KpiTargetSet(
                    target_id=f"t-{unique_id}",
                    campaign_id=spend_campaign,
                    kpi="cpl",
                    target=Decimal("50"),
                    direction="lower_is_better",
                ),
                target="1E+400",
            ),
        ),
        *spoilt(campaign(f"c-{unique_id}-spoilt", plan_id, owner), text_field="name"),
    ]
    for index, (name, value) in enumerate(planning_poisons, start=1):
        campaign_id = f"c-{unique_id}-{index}"
        poisons.append(produce.send(topics.PLANNING, value, key=campaign_id, name=name))
        produce.event(campaign(campaign_id, plan_id, owner))
        planned.append(campaign_id)

    # mrm.kpi.v1 (planning, notifier): the generic poisons, each followed by a proposal
    proposal = BudgetReallocationProposed(
        plan_id=plan_id,
        from_campaign_id=planned[0],
        to_campaign_id=planned[1],
        amount=Decimal("10.00"),
        reason="canary",
    )
    proposals = []
    for name, value in spoilt(proposal, text_field="reason"):
        poisons.append(produce.send(topics.KPI, value, key=plan_id, name=name))
        proposals.append(produce.event(proposal))

    # causes the notifier can deliver only if it projected the planning canaries
    for campaign_id in planned:
        produce.event(
            BudgetThresholdCrossed(
                campaign_id=campaign_id,
                threshold_pct=80,
                spend=Decimal("800"),
                budget=Decimal("1000"),
                currency="USD",
            )
        )

    spend_total = Decimal(len(spend_poisons))

    # execution: every spend canary counted, every planning canary projected
    wait_for(
        lambda: (
            (
                r := platform.get("execution", f"/api/v1/campaigns/{spend_campaign}/progress")
            ).status_code
            == 200
            and money(r.json()["spend"]) == spend_total
        ),
        what="execution counting the spend canaries",
    )
    for campaign_id in planned:
        wait_for(
            lambda c=campaign_id: (
                platform.get("execution", f"/api/v1/campaigns/{c}/progress").status_code == 200
            ),
            what=f"execution projecting {campaign_id}",
        )
    # measurement: the spend and ad-metrics canaries counted, the planning canaries known
    wait_for(
        lambda: (
            (
                r := platform.get("measurement", f"/api/v1/kpis/campaigns/{spend_campaign}")
            ).status_code
            == 200
            and money(r.json()["spend"]) == spend_total
            and r.json()["impressions"] == 10
        ),
        what="measurement counting the spend and ad-metrics canaries",
    )
    for campaign_id in planned:
        wait_for(
            lambda c=campaign_id: (
                platform.get("measurement", f"/api/v1/kpis/campaigns/{c}").status_code == 200
            ),
            what=f"measurement knowing {campaign_id}",
        )
    # planning: every proposal canary recorded
    wait_for(
        lambda: (
            len(platform.get("planning", f"/api/v1/plans/{plan_id}/reallocation-proposals").json())
            == len(proposals)
        ),
        what="planning recording the proposal canaries",
    )

    # notifier: a delivered e-mail for every threshold cause and every proposal
    def delivered() -> Counter[str]:
        body = platform.get("notifier", "/api/v1/notifications", recipient=owner, limit=500)
        return Counter(
            item["cause_event_type"]
            for item in body.json()["items"]
            if item["status"] == "delivered"
        )

    wait_for(
        lambda: (
            delivered()
            == Counter(
                {
                    "budget.threshold_crossed": len(planned),
                    "budget.reallocation_proposed": len(proposals),
                }
            )
        ),
        what="the notifier delivering every canary's notification",
    )

    assert_one_dead_letter_per_group(platform, poisons)


def test_a_flood_of_bad_messages_in_a_batch_gives_one_dead_letter_each(
    platform: Platform, unique_id: str
) -> None:
    campaign_id = f"f-{unique_id}"
    produce = platform.producer
    produce.event(campaign(campaign_id, f"p-{unique_id}", f"ann-{unique_id}"))
    good = spend(campaign_id)
    bad_kinds = [
        ("not JSON", b"{not json"),
        ("tombstone", None),
        ("negative amount", poison_with(good, amount="-1.00")),
        ("NUL in channel", poison_with(good, channel="a\u0000b")),
        (
            "schema_version 99",
            json.dumps({**json.loads(poison_with(good)), "schema_version": 99}).encode(),
        ),
        ("unknown currency", poison_with(good, currency="QQQ")),
    ]
    poisons: list[Sent] = []
    goods = 0
    for index in range(240):
        if index % 3 == 1:
            name, value = bad_kinds[index // 3 % len(bad_kinds)]
            poisons.append(produce.send(topics.SPEND, value, key=campaign_id, name=name))
        else:
            produce.event(good)
            goods += 1

    wait_for(
        lambda: (
            (
                r := platform.get("execution", f"/api/v1/campaigns/{campaign_id}/progress")
            ).status_code
            == 200
            and money(r.json()["spend"]) == goods
        ),
        what="execution counting the good spend of the flood",
    )
    wait_for(
        lambda: (
            (r := platform.get("measurement", f"/api/v1/kpis/campaigns/{campaign_id}")).status_code
            == 200
            and money(r.json()["spend"]) == goods
        ),
        what="measurement counting the good spend of the flood",
    )
    assert_one_dead_letter_per_group(platform, poisons)
