"""``mrm budget`` and ``mrm targets`` render what the planning API answers."""

from __future__ import annotations

from rich.console import Console

from mrm.views import budget_tree, target_tree


def rendered(tree: object) -> str:
    console = Console(width=240, record=True, color_system=None)
    console.print(tree)
    return console.export_text()


def test_the_budget_tree_shows_every_node_with_its_figures() -> None:
    leaf = {
        "name": "Brand A at RetailCo",
        "partner": "RetailCo",
        "planned": "25000.00",
        "committed": "20000.00",
        "actual": "1550.00",
        "remaining": "23450.00",
        "available": "5000.00",
        "lines": [],
    }
    view = {
        "currency": "EUR",
        "unconverted": {"GBP": "70.00"},
        "total": {
            "name": "FY2027",
            "planned": None,
            "committed": "20000.00",
            "actual": "1550.00",
            "remaining": None,
            "available": None,
            "lines": [leaf],
        },
    }
    text = rendered(budget_tree(view))
    assert "FY2027  planned — · committed 20,000.00 · actual 1,550.00" in text
    assert "Brand A at RetailCo (RetailCo)  planned 25,000.00" in text
    assert "available 5,000.00" in text and "GBP" in text


def test_the_target_tree_shows_targets_children_and_gaps() -> None:
    def node(
        name: str, amount: str | None, children: list, total: str | None, gap: str | None
    ) -> dict:  # type: ignore[type-arg]
        return {
            "unit": {"name": name, "kind": "region", "owner": "nina"},
            "target": {"amount": amount} if amount else None,
            "children_sum": total,
            "gap": gap,
            "children": children,
        }

    tree = {
        "period": "2027-Q1",
        "brand": None,
        "roots": [
            node(
                "Acme", "300000.00", [node("North", None, [], None, None)], "170000.00", "130000.00"
            )
        ],
    }
    text = rendered(target_tree(tree))
    assert "Acme region, nina  300,000.00 · children 170,000.00 · gap 130,000.00" in text
    assert "North region, nina  no target" in text
    assert "sales plan" not in text  # no baseline and no uplift: nothing to show
    tree["roots"][0].update(baseline="250000.00", planned_uplift="30000.00", sales_plan="280000.00")
    text = rendered(target_tree(tree))
    assert "sales plan 280,000.00 = baseline 250,000.00 + planned uplift 30,000.00" in text
