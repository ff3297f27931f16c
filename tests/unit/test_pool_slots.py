"""How a claim hands the slot rows it holds to its candidates (pure)."""

from __future__ import annotations

from types import SimpleNamespace

from dagctl.store.pool_slots import Candidate, give_slots, wanted_slots


def test_slots_go_to_the_candidates_in_claim_order_and_a_misfit_holds_its_pool() -> None:
    candidates = [Candidate(1, "wh", 2), Candidate(2, "wh", 2), Candidate(3, "wh", 1), Candidate(4, "api", 1)]
    given = give_slots(candidates, {"wh": [5, 2, 9], "api": []})
    # 2 does not fit in the one slot left; 3 would, but waits behind it.
    assert [(c.task_run_id, slots) for c, slots in given] == [(1, [2, 5])]
    assert give_slots(candidates[2:], {"wh": [1], "api": [3]}) == [(candidates[2], [1]), (candidates[3], [3])]


def test_candidates_ask_no_more_than_their_pool_looked_to_have_free() -> None:
    rows = [
        SimpleNamespace(id=1, pool="wh", slots=1, free=2),
        SimpleNamespace(id=2, pool="api", slots=3, free=3),
        SimpleNamespace(id=3, pool="wh", slots=1, free=2),
        SimpleNamespace(id=4, pool="wh", slots=1, free=2),
    ]
    candidates, wants = wanted_slots(rows)
    assert [c.task_run_id for c in candidates] == [1, 2, 3]
    assert wants == {"wh": 2, "api": 3}
