"""Two sections of the plan report, as HTML — pure, no I/O: the plan's budget tree and the
progress of the sales targets whose periods overlap the report's.

**Budget tree.** The plan on top, its budget lines beneath it (children indented under their
parent), each campaign under the node it draws from (campaigns without a line under the plan).
The roll-up is planning's budget view (``shared.budget.budget_view``), so the report and
``GET /plans/{id}/budget`` agree: **planned** is a line's amount (the plan's cap at the top,
``—`` without one), phased by month as the line says (evenly when it names no months);
**committed** the budgets of the approved, active, paused or completed campaigns drawing from
the node or beneath it (phased by the days of each campaign); **actual** their spend, of every
campaign whatever its status; **remaining** = planned − actual. The totals cover the whole plan
to date; the monthly table shows the months of the report's period. A line whose parent, or a
campaign whose line, measurement does not know (yet) sits under the plan, so the plan's figures
always hold all of them.

**Sales-target progress.** One tree per target period (month or quarter) overlapping the
report's days and per brand with targets there, computed by ``progress.periods_progress`` —
the same figures as ``GET /sales-targets/progress`` for that period and brand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from html import escape

from services.measurement.progress import AtRiskRule, NodeProgress, PeriodProgress, walk
from services.measurement.report import Kind, display
from services.measurement.warehouse.budgets import PlanBudget
from shared.budget import (
    ATTRIBUTES,
    COMMITTED,
    ZERO,
    Budget,
    Figures,
    NodeView,
    budget_view,
    month_of,
)

_FIGURES = ("Planned", "Committed", "Actual", "Remaining")


def window(
    *, period: tuple[dt.date, dt.date] | None, start: dt.datetime | None, end: dt.datetime | None
) -> tuple[dt.date, dt.date] | None:
    """The report's days, first and last inclusive: [from, to) in UTC, a side not given taken
    from the plan's period; None when a side is unknown or the days are empty."""
    first = start.astimezone(dt.UTC).date() if start else (period[0] if period else None)
    last = (
        (end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date()
        if end
        else (period[1] if period else None)
    )
    if first is None or last is None or last < first:
        return None
    return first, last


def budget_tree(plan: PlanBudget) -> tuple[NodeView, list[str]]:
    """The plan's budget tree and its months, as planning's budget view computes them; lines
    and campaigns hanging from an unknown line are put under the plan."""
    known = {line.line_id for line in plan.lines}
    lines = [
        line if line.parent_id in known or line.parent_id is None else replace(line, parent_id=None)
        for line in plan.lines
    ]
    draws = [
        draw if draw.line_id in known or draw.line_id is None else replace(draw, line_id=None)
        for draw in plan.draws
    ]
    return budget_view(Budget(plan.period, lines, draws), actual=plan.actual)


def _cell(value: Decimal | None, kind: Kind = "money") -> str:
    return f"<td>{escape(display(value, kind))}</td>"


def _name_cell(text: str, depth: int, *, title: str = "") -> str:
    hint = f' title="{escape(title)}"' if title else ""
    return (
        f'<td class="text node" style="padding-left: {10 + 20 * depth}px"{hint}>{escape(text)}</td>'
    )


def _label(node: NodeView) -> tuple[str, str]:
    return (node.line.name, node.line.line_id) if node.line else ("", "")


def _walk(node: NodeView, depth: int = 0) -> Iterable[tuple[NodeView, int]]:
    """The node and every node beneath it with its depth, parents first, siblings by name."""
    yield node, depth
    for child in sorted(node.children, key=_label):
        yield from _walk(child, depth + 1)


def _node_row(node: NodeView, depth: int, plan_name: str) -> str:
    line = node.line
    node_id = line.line_id if line else "plan"
    name = (line.name or line.line_id) if line else plan_name
    attributes = "".join(
        f'<td class="text">{escape(getattr(line, a, None) or "")}</td>' for a in ATTRIBUTES
    )
    total = node.total
    figures = _cell(total.planned) + _cell(total.committed) + _cell(total.actual)
    figures += _cell(total.remaining)
    kind = "line" if line else "plan"
    return (
        f'<tr class="{kind}" data-node="{escape(node_id)}" data-depth="{depth}">'
        f'{_name_cell(name, depth)}<td class="text">{kind}</td>{attributes}{figures}</tr>'
    )


def _campaign_rows(
    node: NodeView, depth: int, plan: PlanBudget, names: Mapping[str, str]
) -> Iterable[str]:
    draws = {draw.campaign_id: draw for draw in plan.draws}
    for campaign_id in sorted(node.campaign_ids, key=lambda c: (names.get(c, c), c)):
        draw = draws[campaign_id]
        committed = draw.budget if draw.status in COMMITTED else ZERO
        actual = sum(plan.actual.get(campaign_id, {}).values(), ZERO)
        blank = '<td class="text"></td>' * len(ATTRIBUTES)
        yield (
            f'<tr class="campaign" data-node="{escape(campaign_id)}" data-depth="{depth + 1}">'
            f"{_name_cell(names.get(campaign_id, campaign_id), depth + 1, title=campaign_id)}"
            f'<td class="text">campaign · {escape(draw.status)}</td>{blank}'
            f"{_cell(None)}{_cell(committed)}{_cell(actual)}{_cell(None)}</tr>"
        )


def _totals_table(
    root: NodeView, plan: PlanBudget, plan_name: str, names: Mapping[str, str]
) -> str:
    head = "".join(
        f"<th>{escape(h)}</th>"
        for h in ("Node", "Kind", "Brand", "Channel", "Region", "Partner", *_FIGURES)
    )
    rows = []
    for node, depth in _walk(root):
        rows.append(_node_row(node, depth, plan_name))
        rows.extend(_campaign_rows(node, depth, plan, names))
    return (
        f'<div class="scroll"><table class="budget-tree"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _months_table(root: NodeView, months: Sequence[str], plan_name: str) -> str:
    top = "".join(f'<th colspan="4" class="month">{escape(m)}</th>' for m in months)
    sub = "".join(f"<th>{h}</th>" for _ in months for h in _FIGURES)
    rows = []
    for node, depth in _walk(root):
        line = node.line
        name = (line.name or line.line_id) if line else plan_name
        node_id = line.line_id if line else "plan"
        cells = ""
        for month in months:
            f = node.months.get(month) or Figures()
            cells += _cell(f.planned) + _cell(f.committed) + _cell(f.actual) + _cell(f.remaining)
        rows.append(
            f'<tr data-node="{escape(node_id)}" data-depth="{depth}">'
            f"{_name_cell(name, depth)}{cells}</tr>"
        )
    return (
        f'<div class="scroll"><table class="budget-months"><thead><tr><th rowspan="2">Node</th>'
        f"{top}</tr><tr>{sub}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def budget_section(
    *,
    plan: PlanBudget | None,
    plan_name: str,
    months_of: tuple[dt.date, dt.date] | None,
    campaign_names: Mapping[str, str],
) -> str:
    """The budget tree: totals per node (campaigns under their node), then the same by month,
    for the months of ``months_of`` (first and last day) or every month of the view."""
    if plan is None:
        body = "<p>The plan's period and budget are not known to measurement yet.</p>"
        return f'<section id="budget-tree"><h2>Budget tree</h2>{body}</section>'
    root, months = budget_tree(plan)
    if months_of is not None:
        first, last = month_of(months_of[0]), month_of(months_of[1])
        months = [m for m in months if first <= m <= last]
    note = (
        f"Money in {plan.currency}. Planned: the line's amount (at the top the plan's budget, "
        "— without one); committed: budgets of the approved, active, paused or completed "
        "campaigns drawing from the node or beneath it; actual: their spend to date; "
        "remaining = planned − actual. Totals cover the whole plan; the monthly table shows "
        "the months of the report's period."
    )
    empty = (
        "<p>The plan has no budget lines: its campaigns draw straight from the plan.</p>"
        if not root.children
        else ""
    )
    by_month = f"<h3>By month</h3>{_months_table(root, months, plan_name)}" if months else ""
    return (
        f'<section id="budget-tree"><h2>Budget tree</h2><p class="meta">{escape(note)}</p>'
        f"{empty}{_totals_table(root, plan, plan_name, campaign_names)}{by_month}</section>"
    )


def _unit_rows(
    nodes: Iterable[NodeProgress], *, period: PeriodProgress, unconverted: bool, depth: int = 0
) -> Iterable[str]:
    for node in nodes:
        unit, target = node.unit, node.target
        risk = '<td class="text risk">at risk</td>' if node.at_risk else '<td class="text"></td>'
        extra = ""
        if unconverted:
            apart = ", ".join(f"{display(v, 'money')} {c}" for c, v in node.unconverted.items())
            extra = f'<td class="text">{escape(apart)}</td>'
        yield (
            f'<tr data-unit="{escape(unit.unit_id)}" data-period="{escape(period.period)}" '
            f'data-brand="{escape(period.brand or "")}" data-depth="{depth}">'
            f"{_name_cell(unit.name or unit.unit_id, depth, title=unit.unit_id)}"
            f'<td class="text">{escape(unit.kind)}</td>'
            f'<td class="text">{escape(node.currency)}</td>'
            f"{_cell(target.amount if target else None)}{_cell(node.sales)}"
            f"{_cell(node.share, 'percent')}{_cell(node.forecast)}"
            f"{_cell(node.forecast_share, 'percent')}{risk}{extra}</tr>"
        )
        yield from _unit_rows(
            node.children, period=period, unconverted=unconverted, depth=depth + 1
        )


def _progress_table(period: PeriodProgress) -> str:
    unconverted = any(node.unconverted for node in walk(period.units))
    header = ["Unit", "Kind", "Currency", "Target", "Sales to date", "Share", "Forecast"]
    header += ["Forecast share", "At risk"] + (["Not converted"] if unconverted else [])
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    rows = "".join(_unit_rows(period.units, period=period, unconverted=unconverted))
    brand = f"brand {period.brand}" if period.brand else "all brands"
    title = f"{period.period} ({period.start} – {period.end}) · {brand}"
    return (
        f"<h3>{escape(title)}</h3>"
        f'<div class="scroll"><table class="sales-progress"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def sales_section(
    *,
    periods: Sequence[PeriodProgress],
    days: tuple[dt.date, dt.date] | None,
    rule: AtRiskRule,
    as_of: dt.datetime,
) -> str:
    """Sales-target progress: a tree table per target period overlapping the report's days and
    per brand with targets in it."""
    if days is None:
        body = "<p>The report's period is not known, so no sales targets are shown.</p>"
    elif not periods:
        body = f"<p>No sales targets for a period overlapping {days[0]} – {days[1]}.</p>"
    else:
        note = (
            f"Targets of the months and quarters overlapping {days[0]} – {days[1]}, each over "
            "its whole period, as of "
            f"{as_of.astimezone(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}: a unit's sales are "
            "those attributed to it or to a unit beneath it; share = sales / target; forecast = "
            "sales at the run rate to the period's end (the sales once it is over); at risk when "
            f"the forecast share is below {display(rule.share, 'percent')} once "
            f"{display(rule.min_elapsed, 'percent')} of the period has passed."
        )
        tables = "".join(_progress_table(period) for period in periods)
        body = f'<p class="meta">{escape(note)}</p>{tables}'
    return f'<section id="sales-progress"><h2>Sales-target progress</h2>{body}</section>'
