"""How the notifier writes names, amounts, shares and moments in its messages — pure text
helpers shared by every message module, so each cause reads the same way."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from services.notifier.directory import Directory


def campaign_label(campaign_id: str, directory: Directory) -> str:
    """The campaign's quoted name, or its id when the directory does not know it."""
    campaign = directory.campaigns.get(campaign_id)
    return f'"{campaign.name}"' if campaign else f"campaign {campaign_id}"


def plan_label(plan_id: str, directory: Directory) -> str:
    """The plan's quoted name, or its id when the directory does not know it."""
    plan = directory.plans.get(plan_id)
    return f'"{plan.name}"' if plan else f"plan {plan_id}"


def plan_suffix(campaign_id: str, directory: Directory) -> str:
    """`` (plan "…")`` after a campaign's name, when its plan is known."""
    campaign = directory.campaigns.get(campaign_id)
    if campaign is None or campaign.plan_id not in directory.plans:
        return ""
    return f" (plan {plan_label(campaign.plan_id, directory)})"


def line_label(line_id: str, directory: Directory) -> str:
    """The budget line's quoted name, or its id when the directory does not know it."""
    line = directory.lines.get(line_id)
    return f'"{line.name}"' if line else line_id


def receiver_label(*, campaign_id: str | None, line_id: str | None, directory: Directory) -> str:
    """The campaign or budget line a reallocation gives budget to: the campaign's label,
    ``the budget line "…"``, or ``budget line <id>`` while the line is not known."""
    if campaign_id is not None:
        return campaign_label(campaign_id, directory)
    if line_id is not None and line_id in directory.lines:
        return f"the budget line {line_label(line_id, directory)}"
    return f"budget line {line_id}"


def unit_label(unit_id: str, directory: Directory) -> str:
    """The sales unit's quoted name and kind, or its id when the directory does not know it."""
    unit = directory.units.get(unit_id)
    return f'{unit.kind} "{unit.name}"' if unit else f"sales unit {unit_id}"


_KPI_ACRONYMS = frozenset({"romi", "roi", "cac", "ltv", "cpl", "cpc", "ctr", "ckpi", "mql", "sql"})


def kpi_label(kpi: str) -> str:
    """A KPI's name as people write it (ROMI, cost per lead …)."""
    if kpi.lower() in _KPI_ACRONYMS:
        return kpi.upper()
    return kpi.replace("_", " ")


def money(amount: Decimal, currency: str) -> str:
    """``12,345.60 EUR``."""
    return f"{amount:,.2f} {currency}".rstrip()


def number(value: Decimal) -> str:
    """A measure without trailing zeros."""
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def pct(part: Decimal, whole: Decimal) -> str:
    """``part`` as a share of ``whole`` (``80.0 %``)."""
    if whole == 0:
        return "no budget"
    return f"{part / whole * 100:.1f} %"


def share(value: Decimal) -> str:
    """A 0..1 share as a percentage (``0.25`` → ``25.0 %``)."""
    return f"{value * 100:.1f} %"


def when(moment: dt.datetime) -> str:
    """A moment in UTC to the minute."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(span: dt.timedelta) -> str:
    """A span in days, hours and minutes (``2 d 3 h``)."""
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"
