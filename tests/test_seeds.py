"""``derive_seed``: every seed the runner hands out comes from it."""

from __future__ import annotations

from selfgym.seeds import derive_seed


def test_the_same_keys_give_the_same_seed_and_any_other_key_another():
    assert derive_seed(0, "rollout", 3, 1) == derive_seed(0, "rollout", 3, 1)
    seeds = {derive_seed(seed, use, it, attempt) for seed in (0, 1) for use in ("rollout", "eval", "sampling")
             for it in range(20) for attempt in range(3)}
    assert len(seeds) == 2 * 3 * 20 * 3  # no collisions (seed * 1000 + i schemes collide across uses)
    assert all(0 <= s < 2**31 for s in seeds)


def test_neighbouring_runs_do_not_share_streams_by_offset():
    # with seed + iteration, run seed 0 at iteration 1 replays run seed 1 at iteration 0
    assert derive_seed(0, "rollout", 1) != derive_seed(1, "rollout", 0)
