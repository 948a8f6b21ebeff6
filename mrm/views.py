"""``mrm budget`` and ``mrm targets``: a plan's budget tree and a period's sales-target tree in
the terminal, read from the planning API of a running platform."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.tree import Tree

READER_ROLES = ("viewer", "manager", "cmo", "admin", "executor")


def reader(args: argparse.Namespace) -> tuple[Any, str] | None:
    """The running platform (``mrm up``'s runtime file) and a token to read with, or None
    (with the reason printed) when no token is known."""
    from mrm import runtime
    from shared.settings import CommonSettings

    platform = runtime.load(CommonSettings().data_dir)
    token = args.token or next(
        (t for role in READER_ROLES if (t := platform.token_for(role))), None
    )
    if token is None:
        print(
            "token: none known; pass --token or start the platform with `mrm up`", file=sys.stderr
        )
        return None
    return platform, token


def _get(args: argparse.Namespace, path: str, params: dict[str, str] | None = None) -> Any:
    import httpx

    found = reader(args)
    if found is None:
        return None
    platform, token = found
    url = f"{platform.urls['planning']}{path}"
    try:
        response = httpx.get(
            url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=args.timeout
        )
    except httpx.HTTPError as exc:
        print(f"planning: cannot reach {url} ({exc})", file=sys.stderr)
        return None
    if response.status_code != 200:
        print(f"planning: HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return None
    return response.json()


def _money(value: str | None) -> str:
    return "—" if value is None else f"{float(value):,.2f}"


def budget_tree(view: dict[str, Any]) -> Tree:
    """A budget view as a tree: planned, committed, actual and remaining per node."""

    def label(node: dict[str, Any]) -> str:
        tags = [node.get(key) for key in ("brand", "channel", "region", "partner")]
        tags_text = f" [dim]({', '.join(t for t in tags if t)})[/]" if any(tags) else ""
        return (
            f"[bold]{node['name']}[/]{tags_text}  planned {_money(node['planned'])}"
            f" · committed {_money(node['committed'])} · actual {_money(node['actual'])}"
            f" · remaining {_money(node['remaining'])} · available {_money(node['available'])}"
        )

    def grow(branch: Tree, node: dict[str, Any]) -> None:
        for child in node["lines"]:
            grow(branch.add(label(child)), child)

    root = Tree(f"{label(view['total'])}  [dim]{view['currency']}[/]")
    grow(root, view["total"])
    if view.get("unconverted"):
        root.add(f"[yellow]spend without an FX rate: {view['unconverted']}[/]")
    return root


def target_tree(tree: dict[str, Any]) -> Tree:
    """A sales-target tree: each unit's target, its children's sum and the gap, and its sales
    plan (baseline + the uplift campaigns plan against it) where there is one."""

    def label(node: dict[str, Any]) -> str:
        unit, target = node["unit"], node["target"]
        own = _money(target["amount"]) if target else "no target"
        gap = f" · gap {_money(node['gap'])}" if node["gap"] is not None else ""
        children = f" · children {_money(node['children_sum'])}" if node["children_sum"] else ""
        plan = ""
        if Decimal(node.get("planned_uplift") or 0) or node.get("baseline") is not None:
            plan = (
                f"\n  [dim]sales plan {_money(node.get('sales_plan'))} = baseline"
                f" {_money(node.get('baseline'))} + planned uplift"
                f" {_money(node.get('planned_uplift'))}[/]"
            )
        return (
            f"[bold]{unit['name']}[/] [dim]{unit['kind']}, {unit['owner']}[/]"
            f"  {own}{children}{gap}{plan}"
        )

    def grow(branch: Tree, node: dict[str, Any]) -> None:
        for child in node["children"]:
            grow(branch.add(label(child)), child)

    brand = f" {tree['brand']}" if tree.get("brand") else ""
    root = Tree(f"sales targets {tree['period']}{brand}")
    for node in tree["roots"]:
        grow(root.add(label(node)), node)
    return root


def _show(render: Callable[[dict[str, Any]], Tree], body: Any) -> int:
    if body is None:
        return 1
    Console().print(render(body))
    return 0


def _budget(args: argparse.Namespace) -> int:
    return _show(budget_tree, _get(args, f"/api/v1/plans/{quote(args.plan_id, safe='')}/budget"))


def _targets(args: argparse.Namespace) -> int:
    params = {"period": args.period, **({"brand": args.brand} if args.brand else {})}
    return _show(target_tree, _get(args, "/api/v1/sales-targets", params))


def add_view_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``mrm budget <plan_id>`` and ``mrm targets <period> [--brand]``."""
    budget = commands.add_parser("budget", help="a plan's budget tree (planned/committed/actual)")
    budget.add_argument("plan_id")
    budget.set_defaults(func=_budget)
    targets = commands.add_parser("targets", help="a period's sales-target tree with its gaps")
    targets.add_argument("period", help="a month (2027-03) or a quarter (2027-Q1)")
    targets.add_argument("--brand", help="the targets of one brand (default: all brands)")
    targets.set_defaults(func=_targets)
    for command in (budget, targets):
        command.add_argument("--token", help="bearer token (default: one of `mrm up`'s tokens)")
        command.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
