"""The next-targets formula: sums, floor, cap, few-item cells, method by failing level."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from synth.eval.allocation import Cell, allocate, split, targets, weights


def _cells(scores, n=20, levels=None):
    return [Cell("swh_Latn" if i % 2 else "yor_Latn", cat, s, n, dict(levels or {"language": max(0, 0.8 - s)}))
            for i, (cat, s) in enumerate(scores)]


def test_weights_follow_the_formula():
    w = weights([0.0, 0.4, 0.2], floor=0.1, power=2)
    total = 0.4 ** 2 + 0.2 ** 2
    assert w == pytest.approx([0.1, 0.1 + 0.9 * 0.16 / total, 0.1 + 0.9 * 0.04 / total])
    assert weights([0.0, 0.0], 0.05, 2) == [0.05, 0.05]  # no gap anywhere: even


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.integers(1, 100_000), st.floats(0, 0.5),
       st.floats(0.25, 4))
def test_rows_sum_exactly_to_next_rows_and_every_cell_keeps_about_its_floor(scores, total, floor, power):
    cells = allocate(_cells([(f"c{i}", s) for i, s in enumerate(scores)]), total, 0.8, floor, power, 10, None, 3)
    assert sum(c.rows for c in cells) == total
    w_sum = sum(c.weight for c in cells)
    for c in cells:
        assert abs(c.rows - total * c.weight / w_sum) < 1  # largest remainder: off by less than a row
        assert c.weight >= floor and c.rows >= 0


def test_the_largest_gap_gets_the_most_rows():
    cells = allocate(_cells([("open_qa", 0.9), ("writing", 0.2), ("math", 0.6)]), 1000, 0.8, 0.05, 2, 10, None, 3)
    rows = {c.category: c.rows for c in cells}
    assert rows["writing"] > rows["math"] > rows["open_qa"] > 0


def test_a_cell_with_few_items_gets_only_the_floor():
    cells = [Cell("swh_Latn", "open_qa", 0.0, 3, {"language": 0.8}), Cell("swh_Latn", "writing", 0.5, 30, {"language": 0.3})]
    allocate(cells, 1000, 0.8, 0.05, 2, 10, None, 3)
    few, many = cells
    assert few.few_items and few.gap == 0 and few.weight == 0.05 and few.failing is None
    assert many.rows > 10 * few.rows and "few items" in few.notes[0]


def test_cap_at_three_times_the_previous_round_moves_the_rest_to_other_cells():
    cells = _cells([("open_qa", 0.0), ("writing", 0.7), ("math", 0.75)])
    previous = {(c.lang, c.category): 10 for c in cells}
    allocate(cells, 60, 0.8, 0.05, 2, 10, previous, 3)
    rows = {c.category: c.rows for c in cells}
    assert rows["open_qa"] == 30 and sum(rows.values()) == 60
    assert "capped" in cells[0].notes[0]
    assert split(100, [1, 1], [10, 20]) == [10, 20]  # every cell capped: the caps' sum, not more


def test_method_and_category_follow_the_failing_level():
    cells = [Cell("swh_Latn", "open_qa", 0.1, 20, {"language": 0.7, "culture": 0.1}),
             Cell("swh_Latn", "writing", 0.3, 20, {"culture": 0.5}),
             Cell("swh_Latn", "math", 0.3, 20, {"domain": 0.5})]
    allocate(cells, 300, 0.8, 0.05, 2, 10, None, 3)
    [plan] = targets(cells)
    by = {c.category: c for c in cells}
    assert by["open_qa"].failing == "language" and by["writing"].failing == "culture"
    assert plan.category_rows["local_culture"] == by["writing"].rows // 2
    assert plan.rows == 300 and sum(plan.category_rows.values()) == 300
    assert plan.methods["icl"] > plan.methods["translate"]
    assert any("pivot policy" in n for n in plan.notes)
