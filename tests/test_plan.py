from synth.config import JobConfig
from synth.plan import Planner, apportion, cell_targets


def _job(rows=6, **plan) -> JobConfig:
    return JobConfig.model_validate({
        "targets": [{"lang": "swh_Latn", "rows": rows, "categories": ["open_qa", "reasoning", "writing"]}],
        "engine": {"model": "x"}, "plan": {"max_rounds": 10, **plan},
    })


def test_apportion_sums_exactly_and_follows_weights():
    counts = apportion(10, {("icl", "a"): 0.7, ("translate", "a"): 0.3})
    assert counts == {("icl", "a"): 7, ("translate", "a"): 3}
    assert sum(apportion(7, {(str(i), "c"): 1 for i in range(3)}).values()) == 7


def test_cell_targets_cover_every_method_and_category():
    cells = cell_targets(_job(rows=6).targets[0])
    assert sum(cells.values()) == 6
    assert {m for _, m, _ in cells} == {"icl", "translate"}
    assert {c for _, _, c in cells} == {"open_qa", "reasoning", "writing"}


def test_planner_reaches_target_with_low_acceptance():
    planner = Planner(_job(rows=6, max_attempts_per_row=20), {})
    accepted_every = 5  # 20% acceptance
    seen = 0
    while attempts := planner.next_round():
        for attempt in attempts:
            seen += 1
            cell = (attempt.lang, attempt.method, attempt.category)
            if seen % accepted_every == 0 and planner.deficit(cell):
                planner.record_accepted(cell)
    assert planner.shortfall() == {}
    assert sum(planner.accepted.values()) == 6


def test_planner_stops_at_budget_with_a_shortfall():
    planner = Planner(_job(rows=4, max_attempts_per_row=3), {})
    total = 0
    while attempts := planner.next_round():
        total += len(attempts)  # nothing is ever accepted
    assert total == 12
    short = planner.shortfall()["swh_Latn"]
    assert short["missing"] == 4 and "budget" in short["reason"]


def test_attempt_ids_are_stable_and_unique():
    a = [x.id for x in Planner(_job(), {}).next_round()]
    b = [x.id for x in Planner(_job(), {}).next_round()]
    assert a == b and len(set(a)) == len(a)


def test_capacity_limits_translate_cells():
    job = _job(rows=6)
    capacity = {("swh_Latn", "translate", c): 1 for c in ("open_qa", "reasoning", "writing")}
    planner = Planner(job, capacity)
    while attempts := planner.next_round():
        pass
    assert all(planner.attempted[c] <= 1 for c in capacity)
