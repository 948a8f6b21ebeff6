"""The OpenAPI examples of sales by dimension are valid answers, and brands and channels are
shown side by side: the same fields, the same totals."""

from __future__ import annotations

import pytest

from services.measurement import schemas


@pytest.mark.parametrize("name", sorted(schemas.SALES_EXAMPLES))
def test_the_examples_are_valid_answers(name: str) -> None:
    example = schemas.SALES_EXAMPLES[name]["value"]
    answer = schemas.SalesBreakdown.model_validate(example)
    assert answer.by == name
    assert answer.spend_attributed is (name in ("brand", "channel"))


def test_brands_and_channels_side_by_side() -> None:
    brand, channel = (
        schemas.SalesBreakdown.model_validate(schemas.SALES_EXAMPLES[by]["value"])
        for by in ("brand", "channel")
    )
    assert brand.total == channel.total
    assert brand.rows[0].model_fields_set == channel.rows[0].model_fields_set
