"""What a campaign will give, modelled from the campaigns measured before it: pure, no I/O.

**Peers.** The past campaigns like the one modelled: the same channel and brand (similarity
1.0); when fewer than ``min_peers`` of those have spent anything, the match widens to the same
channel (similarity 0.6 for another brand), then to every campaign (0.3 for another channel),
and the answer says how far it had to go (``match``). A partner in the query adds 0.1 to the
peers of the same partner, a target segment 0.1 to the peers that targeted the same segment
(capped at 1); each peer says what it shares with the query (``matches``). Only what happened
before the modelled campaign starts counts: the caller gives each peer's totals up to that
moment.

**Response curve.** Each volume (impressions, clicks, leads, MQL, SQL, customers, revenue,
gross profit) is fitted against spend as ``y = a · ln(1 + spend / b)``, weighted by similarity.
Why this curve: it is concave (each extra unit of money buys less than the one before, which
is what saturation looks like in media and funnels), it is 0 at no spend, and it has two
parameters — ``a`` the scale, ``b`` the spend where returns start to fall off — which a handful
of peers can pin down, where a Hill curve's third parameter (its S-shape) would need many more.
With fewer than three peers, or spends too alike to tell a curve from a line, ``b`` is set to
their median spend and only ``a`` is fitted (least squares, closed form). The fit is scipy's
``curve_fit`` (bounded ``a, b > 0``).

**Spread.** P50 is the curve at the budget. P10 and P90 scale it by the similarity-weighted
10th and 90th percentiles of the peers' ratios actual / fitted: how far real campaigns strayed
from the curve. Ratios invert the bounds where a volume is the denominator: CPL's P10 (the low,
good end) is the budget over leads' P90. ROMI follows SPEC §4: (gross profit − spend) / spend.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from scipy.optimize import curve_fit

VOLUMES: tuple[str, ...] = (
    "impressions",
    "clicks",
    "leads",
    "mql",
    "sql",
    "customers",
    "revenue",
    "gross_profit",
)
"""What the model fits a curve for; the rest (CPL, CAC, ROMI) follow from these and the budget."""
MONEY_VOLUMES = frozenset({"revenue", "gross_profit"})
SAME_CHANNEL, ANY = Decimal("0.6"), Decimal("0.3")
SAME_PARTNER_BONUS = Decimal("0.1")
SAME_SEGMENT_BONUS = Decimal("0.1")


@dataclass(frozen=True)
class Peer:
    """A past campaign and what it gave before the modelled campaign starts."""

    campaign_id: str
    name: str | None
    channel: str | None
    brand: str | None
    spend: Decimal
    results: Mapping[str, Decimal]
    """Totals of each of ``VOLUMES``."""
    partner: str | None = None
    segment: str | None = None
    """The customer segment it targeted (None = none)."""
    similarity: Decimal = Decimal(1)
    matches: tuple[str, ...] = ()
    """What it shares with the modelled campaign: channel, brand, partner, segment."""


@dataclass(frozen=True)
class Query:
    """The campaign to model."""

    channel: str
    budget: Decimal
    brand: str | None = None
    partner: str | None = None
    segment: str | None = None
    """The customer segment it targets: peers that targeted the same one weigh more."""


@dataclass(frozen=True)
class Curve:
    """``y = a · ln(1 + spend / b)``, and how it was fitted."""

    a: float
    b: float
    method: str
    """``curve_fit`` (both parameters) or ``scale_only`` (b = the peers' median spend)."""

    def at(self, spend: float) -> float:
        """The curve's value at ``spend``."""
        return self.a * math.log1p(spend / self.b) if self.b > 0 else 0.0


@dataclass(frozen=True)
class Band:
    """A modelled figure: P10, P50, P90 (None where it cannot be told)."""

    p10: Decimal | None
    p50: Decimal | None
    p90: Decimal | None


@dataclass
class Model:
    """What the campaign is expected to give, and what the expectation rests on."""

    match: str
    """``channel_brand``, ``channel`` or ``all``: how far the peers had to be widened."""
    peers: list[Peer]
    figures: dict[str, Band] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def choose_peers(
    candidates: Sequence[Peer], query: Query, *, min_peers: int = 3
) -> tuple[list[Peer], str]:
    """The peers to learn from, each with its similarity, and the match level reached."""
    spent = [c for c in candidates if c.spend > 0]
    levels = (
        ("channel_brand", lambda c: c.channel == query.channel and c.brand == query.brand),
        ("channel", lambda c: c.channel == query.channel),
        ("all", lambda c: True),
    )
    match, chosen = "all", spent
    for name, accepts in levels:
        found = [c for c in spent if accepts(c)]
        if len(found) >= min_peers or name == "all":
            match, chosen = name, found
            break
    return [_with_similarity(c, query) for c in chosen], match


def shared_with(peer: Peer, query: Query) -> tuple[str, ...]:
    """What ``peer`` shares with ``query``: channel, brand, partner, segment (an absent brand,
    partner or segment is shared with nothing)."""
    pairs = (
        ("channel", peer.channel, query.channel),
        ("brand", peer.brand, query.brand),
        ("partner", peer.partner, query.partner),
        ("segment", peer.segment, query.segment),
    )
    return tuple(name for name, theirs, ours in pairs if ours is not None and theirs == ours)


def _with_similarity(peer: Peer, query: Query) -> Peer:
    matches = shared_with(peer, query)
    if peer.channel == query.channel and peer.brand == query.brand:
        score = Decimal(1)
    elif peer.channel == query.channel:
        score = SAME_CHANNEL
    else:
        score = ANY
    bonus = {"partner": SAME_PARTNER_BONUS, "segment": SAME_SEGMENT_BONUS}
    score = min(score + sum((bonus.get(m, Decimal(0)) for m in matches), Decimal(0)), Decimal(1))
    return Peer(**{**vars(peer), "similarity": score, "matches": matches})


def _log_curve(spend: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * np.log1p(spend / b)


def fit_curve(spends: Sequence[float], values: Sequence[float], weights: Sequence[float]) -> Curve:
    """The curve ``a · ln(1 + spend / b)`` through the peers' (spend, value), weighted."""
    x, y, w = (np.asarray(v, dtype=float) for v in (spends, values, weights))
    median = float(np.median(x))
    if len(x) >= 3 and float(np.ptp(x)) > 0.05 * median:
        try:
            (a, b), _ = curve_fit(
                _log_curve,
                x,
                y,
                p0=(max(float(y.mean()), 1e-9) / math.log(2), median),
                sigma=1 / np.sqrt(w),
                bounds=((1e-12, 1e-9), (np.inf, np.inf)),
                maxfev=5000,
            )
            if np.isfinite(a) and np.isfinite(b):
                return Curve(a=float(a), b=float(b), method="curve_fit")
        except (RuntimeError, ValueError):
            pass  # no convergence: the one-parameter fit below always has an answer
    b = median if median > 0 else 1.0
    f = np.log1p(x / b)
    denominator = float((w * f * f).sum())
    a = float((w * f * y).sum()) / denominator if denominator > 0 else 0.0
    return Curve(a=max(a, 0.0), b=b, method="scale_only")


def weighted_quantile(values: Sequence[float], weights: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` weighted by ``weights`` (linear between the weighted
    midpoints, so equal weights give the usual sample quantile of type 5)."""
    order = np.argsort(values)
    v = np.asarray(values, dtype=float)[order]
    w = np.asarray(weights, dtype=float)[order]
    if len(v) == 1:
        return float(v[0])
    mid = (np.cumsum(w) - 0.5 * w) / w.sum()
    return float(np.interp(q, mid, v))


def _rounded(value: float, name: str) -> Decimal:
    places = Decimal("0.01") if name in MONEY_VOLUMES else Decimal(1)
    return Decimal(str(max(value, 0.0))).quantize(places)


def model_campaign(query: Query, candidates: Sequence[Peer], *, min_peers: int = 3) -> Model:
    """P10/P50/P90 of every volume, CPL, CAC and ROMI for ``query``, from ``candidates``."""
    peers, match = choose_peers(candidates, query, min_peers=min_peers)
    result = Model(match=match, peers=peers)
    if match != "channel_brand":
        result.notes.append(
            f"fewer than {min_peers} campaigns of channel {query.channel!r}"
            + (f" and brand {query.brand!r}" if query.brand else "")
            + f" have spent: learned from {'the channel' if match == 'channel' else 'all'}"
            " campaigns"
        )
    if not peers:
        result.notes.append("no campaign has spent anything before: nothing to learn from")
        return result
    if query.segment is not None and not any("segment" in p.matches for p in peers):
        result.notes.append(f"no peer targeted segment {query.segment!r}")
    spends = [float(p.spend) for p in peers]
    weights = [float(p.similarity) for p in peers]
    budget = float(query.budget)
    for name in VOLUMES:
        values = [float(p.results.get(name) or 0) for p in peers]
        curve = fit_curve(spends, values, weights)
        result.curves[name] = curve
        fitted = [curve.at(s) for s in spends]
        ratios = [v / f for v, f in zip(values, fitted, strict=True) if f > 0]
        kept = [w for f, w in zip(fitted, weights, strict=True) if f > 0]
        p50 = curve.at(budget)
        low = weighted_quantile(ratios, kept, 0.1) if ratios else 1.0
        high = weighted_quantile(ratios, kept, 0.9) if ratios else 1.0
        result.figures[name] = Band(
            p10=_rounded(p50 * min(low, 1.0), name),
            p50=_rounded(p50, name),
            p90=_rounded(p50 * max(high, 1.0), name),
        )
    figures = result.figures
    result.figures["cpl"] = _per(query.budget, figures["leads"])
    result.figures["cac"] = _per(query.budget, figures["customers"])
    result.figures["romi"] = _romi(query.budget, figures["gross_profit"])
    return result


def _per(budget: Decimal, volume: Band) -> Band:
    """Budget per unit of ``volume``: the most units give the lowest cost (P10)."""

    def cost(units: Decimal | None) -> Decimal | None:
        return None if not units else (budget / units).quantize(Decimal("0.01"))

    return Band(p10=cost(volume.p90), p50=cost(volume.p50), p90=cost(volume.p10))


def _romi(budget: Decimal, gross_profit: Band) -> Band:
    def romi(profit: Decimal | None) -> Decimal | None:
        if profit is None or budget <= 0:
            return None
        return ((profit - budget) / budget).quantize(Decimal("0.000001"))

    return Band(p10=romi(gross_profit.p10), p50=romi(gross_profit.p50), p90=romi(gross_profit.p90))


# --------------------------------------------------------------------------------------------
# plan scenario: splitting a total budget for the most expected gross profit
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """Where money may go in a scenario: a fitted gross-profit curve and the bounds given."""

    key: str
    curve: Curve
    minimum: Decimal = Decimal(0)
    maximum: Decimal | None = None


def allocate(total: Decimal, candidates: Sequence[Candidate]) -> dict[str, Decimal]:
    """The split of ``total`` that maximises the sum of the candidates' curves within their
    bounds: equal marginal returns. A curve ``a · ln(1 + s / b)`` returns ``a / (b + s)`` for
    the next unit of money, so at the optimum every candidate not held at a bound gets
    ``s = a / λ − b`` for one λ, found by bisection so that the parts add up to ``total``.
    Amounts are in cents and add up exactly (the rounding's cents go to the first candidates
    with room). ``total`` outside the sum of the minimums and maximums is a ``ValueError``."""
    low = sum((c.minimum for c in candidates), Decimal(0))
    if total < low:
        raise ValueError(f"the minimums add up to {low}, more than the total {total}")
    if all(c.maximum is not None for c in candidates):
        high = sum((c.maximum or Decimal(0) for c in candidates), Decimal(0))
        if total > high:
            raise ValueError(f"the maximums add up to {high}, less than the total {total}")

    def spend_at(lam: float) -> list[float]:
        out = []
        for c in candidates:
            ideal = c.curve.a / lam - c.curve.b if lam > 0 else math.inf
            upper = math.inf if c.maximum is None else float(c.maximum)
            out.append(min(max(ideal, float(c.minimum)), upper))
        return out

    target = float(total)
    lo, hi = 1e-12, max((c.curve.a / c.curve.b for c in candidates), default=1.0) * 2 + 1e-9
    for _ in range(200):  # the sum falls as λ rises: bisect on a log scale
        mid = math.sqrt(lo * hi)
        if sum(spend_at(mid)) > target:
            lo = mid
        else:
            hi = mid
    exact = [Decimal(str(s)) for s in spend_at(hi)]
    parts = [value.quantize(Decimal("0.01"), rounding="ROUND_DOWN") for value in exact]
    # what rounding (or curves too flat to place it) left goes to the largest remainders
    # first, in equal shares, to candidates with room
    cent = Decimal("0.01")
    cents_left = int((total - sum(parts, Decimal(0))) / cent)
    order = sorted(range(len(parts)), key=lambda i: (parts[i] - exact[i], i))
    while cents_left > 0:
        room = {
            i: None if c.maximum is None else int((c.maximum - parts[i]) / cent)
            for i, c in ((i, candidates[i]) for i in order)
        }
        open_ = [i for i in order if room[i] is None or (room[i] or 0) > 0]
        if not open_:
            break
        share, extra = divmod(cents_left, len(open_))
        for rank, i in enumerate(open_):
            give = share + (1 if rank < extra else 0)
            limit = room[i]
            give = give if limit is None else min(give, limit)
            parts[i] += give * cent
            cents_left -= give
    return {c.key: part for c, part in zip(candidates, parts, strict=True)}


# --------------------------------------------------------------------------------------------
# backtest: each past campaign modelled from the ones that ended before it started
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Past:
    """A campaign of the history: what it gave in all, its dates and budget."""

    peer: Peer
    start: dt.date
    end: dt.date
    budget: Decimal


@dataclass(frozen=True)
class Accuracy:
    """How the model did on one figure: over ``n`` campaigns, the mean absolute percentage
    error of P50 against the actual (campaigns with an actual of 0 are left out of it) and the
    share whose actual fell within P10–P90."""

    n: int
    mape: Decimal | None
    within_p10_p90: Decimal | None


def backtest(
    history: Sequence[Past], *, min_peers: int = 3, kpis: Sequence[str] = VOLUMES
) -> tuple[dict[str, Accuracy], int]:
    """Model each campaign of ``history`` at its actual spend from the campaigns that ended
    before it started (so nothing it could not have known), and compare with what it gave.
    Returns the accuracy per figure and how many campaigns could be modelled (those with at
    least one earlier campaign)."""
    errors: dict[str, list[float]] = {name: [] for name in kpis}
    inside: dict[str, list[bool]] = {name: [] for name in kpis}
    modelled = 0
    for past in history:
        earlier = [p.peer for p in history if p.end < past.start and p.peer.spend > 0]
        if not earlier or past.peer.spend <= 0:
            continue
        query = Query(
            channel=past.peer.channel or "",
            brand=past.peer.brand,
            partner=past.peer.partner,
            segment=past.peer.segment,
            budget=past.peer.spend,
        )
        model = model_campaign(query, earlier, min_peers=min_peers)
        modelled += 1
        for name in kpis:
            band, actual = model.figures.get(name), past.peer.results.get(name)
            if band is None or band.p50 is None or actual is None:
                continue
            if actual > 0:
                errors[name].append(abs(float(band.p50) - float(actual)) / float(actual))
            low, high = band.p10 or Decimal(0), band.p90 or Decimal(0)
            inside[name].append(low <= actual <= high)
    accuracy = {
        name: Accuracy(
            n=len(inside[name]),
            mape=_share(sum(errors[name]) / len(errors[name])) if errors[name] else None,
            within_p10_p90=(
                _share(sum(inside[name]) / len(inside[name])) if inside[name] else None
            ),
        )
        for name in kpis
    }
    return accuracy, modelled


def _share(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0001"))
