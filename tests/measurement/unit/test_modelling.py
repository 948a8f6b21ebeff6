"""The campaign model on hand-made histories: the curve's parameters recovered from a known
synthetic history, saturation, widening the peers, the spread and the derived ratios."""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import replace
from decimal import Decimal as D

import pytest

from services.measurement.modelling import (
    Candidate,
    Curve,
    Past,
    Peer,
    Query,
    allocate,
    backtest,
    choose_peers,
    fit_curve,
    model_campaign,
    weighted_quantile,
)

A, B = 500.0, 10_000.0  # leads = 500 · ln(1 + spend / 10,000)


def peer(
    campaign_id: str,
    spend: float,
    *,
    channel: str = "search",
    brand: str = "Acme",
    **results: float,
) -> Peer:
    return Peer(
        campaign_id=campaign_id,
        name=None,
        channel=channel,
        brand=brand,
        spend=D(str(spend)),
        results={name: D(str(value)) for name, value in results.items()},
    )


def synthetic(n: int = 12, *, noise: float = 0.05, seed: int = 3) -> list[Peer]:
    """Campaigns of 2,000 … 60,000 spend whose leads follow the known curve, ±``noise``."""
    rng = random.Random(seed)
    peers = []
    for i in range(n):
        spend = 2_000 + i * (58_000 / (n - 1))
        leads = A * math.log1p(spend / B) * (1 + rng.uniform(-noise, noise))
        peers.append(peer(f"c{i}", round(spend, 2), leads=round(leads)))
    return peers


def test_the_curve_parameters_are_recovered_from_a_known_history() -> None:
    peers = synthetic()
    curve = fit_curve(
        [float(p.spend) for p in peers], [float(p.results["leads"]) for p in peers], [1.0] * 12
    )
    assert curve.method == "curve_fit"
    # stated tolerance: within 10 % for a, 25 % for b, with ±5 % noise on 12 campaigns
    assert curve.a == pytest.approx(A, rel=0.10)
    assert curve.b == pytest.approx(B, rel=0.25)
    # without noise, exactly (to the optimiser's precision)
    exact = synthetic(noise=0)
    curve = fit_curve(
        [float(p.spend) for p in exact], [float(p.results["leads"]) for p in exact], [1.0] * 12
    )
    assert (curve.a, curve.b) == (pytest.approx(A, rel=0.01), pytest.approx(B, rel=0.02))


def test_doubling_a_budget_does_not_double_the_leads_where_history_saturates() -> None:
    model = model_campaign(Query(channel="search", brand="Acme", budget=D(30_000)), synthetic())
    doubled = model_campaign(Query(channel="search", brand="Acme", budget=D(60_000)), synthetic())
    leads, more = model.figures["leads"].p50, doubled.figures["leads"].p50
    assert leads is not None and more is not None
    assert D("1.3") < more / leads < D("1.6")  # ln(7) / ln(4) = 1.40 on the true curve
    assert leads == pytest.approx(D(A * math.log1p(3)), rel=D("0.08"))


def test_peers_widen_from_channel_and_brand_to_channel_to_all_and_say_so() -> None:
    same = [peer(f"s{i}", 1000 * (i + 1), leads=10) for i in range(2)]
    channel = [peer(f"c{i}", 1000, brand="Other", leads=10) for i in range(2)]
    other = [peer("o", 1000, channel="social", leads=10), peer("idle", 0, leads=0)]
    query = Query(channel="search", brand="Acme", budget=D(1000))
    chosen, match = choose_peers(same + channel + other, query)
    assert match == "channel"
    assert {(p.campaign_id, p.similarity) for p in chosen} == {
        ("s0", D(1)),
        ("s1", D(1)),
        ("c0", D("0.6")),
        ("c1", D("0.6")),
    }
    chosen, match = choose_peers(same + other, query, min_peers=4)
    assert match == "all" and [p.campaign_id for p in chosen] == ["s0", "s1", "o"]  # not idle
    assert chosen[2].similarity == D("0.3")
    chosen, match = choose_peers(same + channel, query, min_peers=2)
    assert match == "channel_brand" and len(chosen) == 2
    model = model_campaign(query, same + other, min_peers=4)
    assert model.match == "all"
    assert model.notes == [
        "fewer than 4 campaigns of channel 'search' and brand 'Acme' have spent: learned"
        " from all campaigns"
    ]


def test_peers_of_the_same_segment_or_partner_weigh_more_and_say_so() -> None:
    def with_(base: Peer, **kw: object) -> Peer:
        return replace(base, **kw)  # type: ignore[arg-type]

    peers = [
        with_(peer("s0", 1000, leads=10), segment="rfm:champions"),
        with_(peer("c0", 1000, brand="Other", leads=10), segment="rfm:champions"),
        with_(peer("c1", 1000, brand="Other", leads=10), segment="lapsed"),
        with_(peer("o", 1000, channel="social", leads=10), segment="rfm:champions", partner="P"),
        peer("n", 1000, channel="social", leads=10),
    ]
    query = Query(channel="search", brand="Acme", segment="rfm:champions", partner="P", budget=D(1))
    chosen, match = choose_peers(peers, query, min_peers=5)
    assert match == "all"
    assert {p.campaign_id: (p.similarity, p.matches) for p in chosen} == {
        "s0": (D(1), ("channel", "brand", "segment")),  # capped at 1
        "c0": (D("0.7"), ("channel", "segment")),  # 0.6 + 0.1
        "c1": (D("0.6"), ("channel",)),
        "o": (D("0.5"), ("brand", "partner", "segment")),  # 0.3 + 0.1 + 0.1
        "n": (D("0.3"), ("brand",)),  # another channel, the same brand
    }
    unsegmented = replace(query, segment=None, partner=None)
    chosen, _ = choose_peers(peers, unsegmented, min_peers=5)
    assert {p.campaign_id: p.similarity for p in chosen}["c0"] == D("0.6")
    assert {p.campaign_id: p.matches for p in chosen}["s0"] == ("channel", "brand")


def test_the_segment_weight_moves_the_expectation_toward_its_peers() -> None:
    # two peers at one spend: b = 1,000 and P50 at 1,000 is their similarity-weighted mean
    peers = [
        replace(peer("hit", 1000, brand="Other", leads=30), segment="rfm:champions"),
        replace(peer("miss", 1000, brand="Other", leads=10), segment="lapsed"),
    ]
    plain = Query(channel="search", brand="Acme", budget=D(1000))
    assert model_campaign(plain, peers, min_peers=2).figures["leads"].p50 == D(20)  # 40 / 2
    aimed = replace(plain, segment="rfm:champions")
    model = model_campaign(aimed, peers, min_peers=2)
    assert model.figures["leads"].p50 == D(21)  # (0.7 · 30 + 0.6 · 10) / 1.3 = 20.77
    assert "no peer targeted" not in " ".join(model.notes)
    elsewhere = model_campaign(replace(plain, segment="rfm:new"), peers, min_peers=2)
    assert elsewhere.notes[-1] == "no peer targeted segment 'rfm:new'"
    assert elsewhere.figures["leads"].p50 == D(20)


def test_the_spread_comes_from_how_far_peers_strayed_from_the_curve() -> None:
    assert weighted_quantile([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], 0.5) == 2.5
    assert weighted_quantile([1.0, 2.0], [3, 1], 0.1) == 1.0
    model = model_campaign(Query(channel="search", brand="Acme", budget=D(20_000)), synthetic())
    band = model.figures["leads"]
    assert band.p10 is not None and band.p50 is not None and band.p90 is not None
    assert band.p10 < band.p50 < band.p90
    assert band.p90 / band.p50 < D("1.06") and band.p50 / band.p10 < D("1.06")  # ±5 % noise


def test_cpl_cac_and_romi_follow_from_the_budget_and_the_volumes() -> None:
    peers = [
        peer(f"c{i}", s, leads=s / 50, customers=s / 1000, gross_profit=s * 1.5)
        for i, s in enumerate((10_000, 20_000, 40_000))
    ]
    model = model_campaign(Query(channel="search", brand="Acme", budget=D(20_000)), peers)
    leads, cpl = model.figures["leads"], model.figures["cpl"]
    assert cpl.p50 == (D(20_000) / leads.p50).quantize(D("0.01"))  # type: ignore[operator]
    assert cpl.p10 == (D(20_000) / leads.p90).quantize(D("0.01"))  # type: ignore[operator]
    profit = model.figures["gross_profit"].p50
    assert model.figures["romi"].p50 == ((profit - 20_000) / D(20_000)).quantize(D("0.000001"))  # type: ignore[operator]
    assert {p.campaign_id for p in model.peers} == {"c0", "c1", "c2"}


def test_one_or_two_peers_fit_the_scale_only_and_none_tell_nothing() -> None:
    curve = fit_curve([10_000.0], [200.0], [1.0])
    assert curve.method == "scale_only" and curve.b == 10_000.0
    assert curve.at(10_000.0) == pytest.approx(200.0)
    empty = model_campaign(Query(channel="tv", budget=D(1000)), [])
    assert (empty.match, empty.figures, empty.peers) == ("all", {}, [])
    assert "nothing to learn from" in empty.notes[-1]


def test_a_scenario_splits_the_budget_at_equal_marginal_returns() -> None:
    one = Candidate("one", Curve(a=1000, b=1000, method="curve_fit"))
    two = Candidate("two", Curve(a=2000, b=1000, method="curve_fit"))
    # s = a / λ − b for both, s1 + s2 = 5,000 → λ = 3,000 / 7,000: 1,333.33 and 3,666.67
    assert allocate(D(5000), [one, two]) == {"one": D("1333.33"), "two": D("3666.67")}
    capped = Candidate("two", two.curve, maximum=D(3000))
    assert allocate(D(5000), [one, capped]) == {"one": D("2000.00"), "two": D("3000.00")}
    floored = Candidate("one", one.curve, minimum=D(1500))
    assert allocate(D(5000), [floored, two]) == {"one": D("1500.00"), "two": D("3500.00")}
    # a flat curve gets nothing beyond its minimum while the others return more
    flat = Candidate("flat", Curve(a=1, b=1000, method="curve_fit"), minimum=D(100))
    split = allocate(D(5000), [one, two, flat])
    assert split["flat"] == D("100.00") and sum(split.values()) == D(5000)
    with pytest.raises(ValueError, match="minimums add up to 1500"):
        allocate(D(1000), [floored, two])
    with pytest.raises(ValueError, match="maximums add up to 3000"):
        allocate(D(4000), [Candidate("x", one.curve, maximum=D(3000))])


def test_flat_curves_share_the_budget_evenly_within_their_bounds() -> None:
    flat = Curve(a=0.0, b=1.0, method="scale_only")
    split = allocate(
        D("100000.01"),
        [Candidate("a", flat), Candidate("b", flat, maximum=D(20000)), Candidate("c", flat)],
    )
    assert split == {"a": D("40000.01"), "b": D("20000.00"), "c": D("40000.00")}


def test_a_backtest_models_each_campaign_from_those_over_before_it_started() -> None:
    day = dt.date(2026, 1, 1)

    exact = synthetic(noise=0)
    history = [
        Past(
            peer=p,
            start=day + dt.timedelta(days=10 * i),
            end=day + dt.timedelta(10 * i + 5),
            budget=p.spend,
        )
        for i, p in enumerate(exact)
    ]
    accuracy, modelled = backtest(history, kpis=("leads",))
    assert modelled == 11  # the first has nothing before it
    assert accuracy["leads"].n == 11
    assert accuracy["leads"].mape is not None and accuracy["leads"].mape < D("0.25")
    # with noise the actuals stray, and P10–P90 holds some of them
    noisy = [replace(h, peer=p) for h, p in zip(history, synthetic(noise=0.3), strict=True)]
    accuracy, _ = backtest(noisy, kpis=("leads",))
    assert accuracy["leads"].within_p10_p90 is not None
    assert D(0) < accuracy["leads"].within_p10_p90 <= D(1)
    # a campaign still running when another starts is not its peer: only what was over counts
    overlapping = [
        Past(peer=exact[0], start=day, end=day + dt.timedelta(days=30), budget=exact[0].spend),
        Past(
            peer=exact[1],
            start=day + dt.timedelta(days=10),
            end=day + dt.timedelta(days=40),
            budget=exact[1].spend,
        ),
    ]
    assert backtest(overlapping)[1] == 0
