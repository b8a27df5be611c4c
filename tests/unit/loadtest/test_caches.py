"""Cache hit ratios over a run, from the instances' counters before and after."""

from __future__ import annotations

import pytest

from agora.loadtest.caches import hit_ratios


def test_lookups_during_the_run_by_cache_and_their_hit_share() -> None:
    before = {("feed", "hit"): 100.0, ("feed", "miss"): 50.0, ("post", "hit"): 10.0}
    after = {("feed", "hit"): 400.0, ("feed", "miss"): 150.0, ("post", "hit"): 10.0}
    ratios = hit_ratios(before, after)
    assert ratios["feed"]["lookups"] == 400.0
    assert ratios["feed"]["hit_ratio"] == pytest.approx(0.75)
    assert ratios["feed"]["by_result"] == {"hit": 300.0, "miss": 100.0}
    assert ratios["post"]["hit_ratio"] is None  # no lookup during the run: no ratio invented


def test_a_counter_below_its_start_counts_nothing_rather_than_negative() -> None:
    # An instance restarted mid-run: its counters start again from 0.
    ratios = hit_ratios({("feed", "hit"): 500.0}, {("feed", "hit"): 20.0, ("feed", "miss"): 5.0})
    assert ratios["feed"]["by_result"] == {"hit": 0.0, "miss": 5.0}


def test_an_instance_that_did_not_answer_gives_no_figures() -> None:
    assert hit_ratios(None, {("feed", "hit"): 1.0}) == {}
    assert hit_ratios({("feed", "hit"): 1.0}, None) == {}
