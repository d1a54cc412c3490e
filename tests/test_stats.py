import numpy as np
import pytest

from selfgym.stats import bootstrap_ci, paired_difference, pass_at_k


def test_pass_at_k_matches_the_definition():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(7,2)/C(10,2) = 1 - 21/45
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = rng.random(20) < 0.5
    big = rng.random(2000) < 0.5
    lo_s, hi_s = bootstrap_ci(small)
    lo_b, hi_b = bootstrap_ci(big)
    assert lo_s <= small.mean() <= hi_s and lo_b <= big.mean() <= hi_b
    assert hi_b - lo_b < hi_s - lo_s


def test_paired_difference_pairs_tasks_by_id_and_averages_each_tasks_outcomes():
    before = {"a": [False], "b": [True], "c": [False, True], "only-before": [True]}
    after = {"a": [True], "b": [True], "c": [True, True], "only-after": [False]}
    change, ci, n = paired_difference(before, after)
    assert n == 3 and change == pytest.approx((1 + 0 + 0.5) / 3)
    assert ci is not None and ci[0] <= change <= ci[1]
    assert paired_difference(before, {"x": [True]}) == (None, None, 0)
