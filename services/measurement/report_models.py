"""The plan report's "Modelled vs actual" section: for each campaign, what the campaign model
expected from the campaigns measured before its start (P50, with P10–P90) next to what it
has given so far — pure HTML, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from services.measurement.modelling import Band, Model
from services.measurement.report import Kind, display

FIGURES: tuple[tuple[str, str, Kind], ...] = (
    ("leads", "Leads", "count"),
    ("customers", "Customers", "count"),
    ("revenue", "Revenue", "money"),
    ("romi", "ROMI", "percent"),
)


@dataclass(frozen=True)
class ModelledCampaign:
    """A campaign of the report with its model (None: no model could be made)."""

    label: str
    model: Model | None
    actual: Mapping[str, Any]


def _band(band: Band | None, kind: Kind) -> str:
    if band is None or band.p50 is None:
        return '<td class="text">—</td>'
    spread = f"{display(band.p10, kind)} – {display(band.p90, kind)}"
    return f'<td title="P10–P90 {escape(spread)}">{escape(display(band.p50, kind))}</td>'


def model_section(campaigns: Sequence[ModelledCampaign]) -> str:
    """The section's HTML (empty when there is no campaign to show)."""
    if not campaigns:
        return ""
    head = "".join(
        f"<th>{escape(title)} modelled</th><th>{escape(title)} actual</th>"
        for _, title, _ in FIGURES
    )
    rows = []
    for campaign in campaigns:
        cells = [f'<td class="text">{escape(campaign.label)}</td>']
        model = campaign.model
        match = model.match.replace("_", " + ") if model else "—"
        cells.append(f'<td class="text">{escape(match)}</td>')
        for key, _, kind in FIGURES:
            cells.append(_band(model.figures.get(key) if model else None, kind))
            cells.append(f"<td>{escape(display(campaign.actual.get(key), kind))}</td>")
        rows.append(f'<tr data-campaign="{escape(campaign.label)}">{"".join(cells)}</tr>')
    note = (
        "Modelled: the P50 the campaign model expects at the campaign's budget from the "
        "campaigns measured before it started (hover for P10–P90); match: how far the peers "
        "had to be widened (channel + brand, channel, all). Actual: so far, over the report's "
        "period."
    )
    return (
        '<section id="modelled"><h2>Modelled vs actual</h2>'
        f'<p class="meta">{escape(note)}</p>'
        f'<table><thead><tr><th class="text">Campaign</th><th class="text">Match</th>{head}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )
