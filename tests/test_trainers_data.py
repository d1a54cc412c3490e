"""Training rows from token-exact trajectories: masks cover exactly the agent's tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfgym.errors import ConfigError
from selfgym.store import Store
from selfgym.trainers.data import (
    IGNORE_INDEX,
    collate,
    exclude_heldout,
    is_token_exact,
    minibatches,
    sft_labels,
    trajectory_rows,
)
from selfgym.trainers.run import candidate_trajectories
from selfgym.types import Task, Trajectory, Turn

# Prompt tokens are 100-199, the agent's tokens 200-299, observation tokens 300-399, so each
# token's role can be read off its value.
SYSTEM = [100, 101, 102]


def agent(*ids: int) -> list[int]:
    return [200 + i for i in ids]


def obs(*ids: int) -> list[int]:
    return [300 + i for i in ids]


def dialogue(turns: int, *, rebuild_at: int | None = None, logprobs: bool = True) -> Trajectory:
    """A trajectory whose turn k prompt is the whole dialogue so far (or a fresh one at ``rebuild_at``)."""
    context, traj = list(SYSTEM) + obs(0), Trajectory(task_id="t", env_id="e")
    for k in range(turns):
        completion = agent(10 * k, 10 * k + 1, 10 * k + 2)
        lp = [-0.1 * (k + 1), -0.2 * (k + 1), -0.3 * (k + 1)] if logprobs else None
        traj.turns.append(Turn(observation=f"o{k}", action=f"a{k}", prompt_ids=list(context),
                               completion_ids=completion, logprobs=lp))
        context = context + completion + obs(k + 1, k + 1)
        if rebuild_at is not None and k + 1 == rebuild_at:
            context = [*SYSTEM, *obs(50)]
    return traj


def roles(ids: list[int]) -> list[str]:
    return ["agent" if 200 <= t < 300 else "context" for t in ids]


def test_single_turn_mask_is_exactly_the_completion():
    traj = dialogue(1)
    (row,) = trajectory_rows(traj)
    assert row.input_ids == traj.turns[0].prompt_ids + traj.turns[0].completion_ids
    assert row.agent_mask == [r == "agent" for r in roles(row.input_ids)]
    assert row.turn_index == [0 if r == "agent" else -1 for r in roles(row.input_ids)]


def test_multi_turn_dialogue_merges_into_one_row_with_every_agent_token_masked_in():
    traj = dialogue(3)
    (row,) = trajectory_rows(traj)
    # the merged row is the last prompt plus the last completion: the full dialogue, token-exact
    assert row.input_ids == traj.turns[-1].prompt_ids + traj.turns[-1].completion_ids
    for token, is_agent, turn in zip(row.input_ids, row.agent_mask, row.turn_index, strict=True):
        assert is_agent == (200 <= token < 300), token
        assert turn == ((token - 200) // 10 if is_agent else -1), token
    assert row.n_agent_tokens == 9


def test_behaviour_logprobs_line_up_with_their_tokens():
    (row,) = trajectory_rows(dialogue(2))
    for token, lp in zip(row.input_ids, row.behaviour_logprobs, strict=True):
        if 200 <= token < 300:
            k, j = divmod(token - 200, 10)
            assert lp == pytest.approx(-0.1 * (j + 1) * (k + 1))
        else:
            assert math.isnan(lp)


def test_missing_logprobs_stay_nan():
    (row,) = trajectory_rows(dialogue(2, logprobs=False))
    assert all(math.isnan(x) for x in row.behaviour_logprobs)


def test_rebuilt_prompt_starts_a_new_row_in_its_own_context():
    traj = dialogue(3, rebuild_at=2)
    rows = trajectory_rows(traj)
    assert len(rows) == 2
    assert rows[0].input_ids == traj.turns[1].prompt_ids + traj.turns[1].completion_ids
    assert rows[1].input_ids == traj.turns[2].prompt_ids + traj.turns[2].completion_ids
    assert rows[1].turn_index.count(2) == 3 and set(rows[1].turn_index) == {-1, 2}
    for row in rows:
        assert row.agent_mask == [r == "agent" for r in roles(row.input_ids)]


def test_merge_turns_off_gives_one_row_per_turn():
    traj = dialogue(3)
    rows = trajectory_rows(traj, merge_turns=False)
    assert [r.input_ids for r in rows] == [t.prompt_ids + t.completion_ids for t in traj.turns]


def test_max_length_splits_before_cutting_and_counts_the_cut():
    traj = dialogue(3)
    whole = len(trajectory_rows(traj)[0])
    rows = trajectory_rows(traj, max_length=whole - 1)
    # turns 0 and 1 still fit in one row; turn 2 starts its own row and loses its last token
    assert [sorted(set(r.turn_index) - {-1}) for r in rows] == [[0, 1], [2]]
    assert rows[1].input_ids == (traj.turns[2].prompt_ids + traj.turns[2].completion_ids)[: whole - 1]
    assert rows[1].cut_tokens == 1 and sum(r.n_agent_tokens for r in rows) == 8
    # a single turn longer than the limit keeps its start; the agent tokens lost are counted
    (short,) = trajectory_rows(dialogue(1), max_length=len(SYSTEM) + 2)
    assert short.input_ids == SYSTEM + obs(0) + agent(0) and short.cut_tokens == 2


def test_turn_without_token_ids_is_refused():
    traj = Trajectory(task_id="t", env_id="e", turns=[Turn(observation="o", action="a")])
    assert not is_token_exact(traj)
    with pytest.raises(ValueError, match="token-exact"):
        trajectory_rows(traj)


def test_sft_labels_ignore_every_context_token():
    (row,) = trajectory_rows(dialogue(2))
    labels = sft_labels(row)
    for token, label in zip(row.input_ids, labels, strict=True):
        assert label == (token if 200 <= token < 300 else IGNORE_INDEX)


def test_collate_pads_right_and_masks_padding_out():
    rows = trajectory_rows(dialogue(1)) + trajectory_rows(dialogue(2))
    batch = collate(rows, pad_id=0, advantages=[[1.0] * len(r) for r in rows])
    assert batch.input_ids.shape == (2, len(rows[1]))
    n = len(rows[0])
    assert batch.input_ids[0, n:].eq(0).all() and batch.attention_mask[0, n:].eq(0).all()
    assert not batch.agent_mask[0, n:].any() and batch.token_advantages[0, n:].eq(0).all()
    labels = batch.labels
    assert labels[batch.agent_mask].tolist() == batch.input_ids[batch.agent_mask].tolist()
    assert labels[~batch.agent_mask].eq(IGNORE_INDEX).all()
    assert torch.isnan(batch.behaviour_logprobs[~batch.agent_mask]).all()


def test_minibatches_cover_every_item_once_per_epoch():
    rng = np.random.default_rng(0)
    batches = minibatches(10, batch_size=4, micro_batch_size=2, rng=rng, lengths=list(range(10, 0, -1)))
    flat = [i for batch in batches for micro in batch for i in micro]
    assert sorted(flat) == list(range(10))
    assert [len(b) for b in batches] == [2, 2, 1]
    for batch in batches:  # sorted by length inside an optimizer batch
        items = [i for micro in batch for i in micro]
        assert items == sorted(items, reverse=True)


def test_rows_survive_the_sqlite_store_token_for_token(tmp_path):
    traj = dialogue(3, rebuild_at=1)
    with Store(tmp_path) as store:
        store.add_trajectory(traj)
        loaded = store.trajectory(traj.id)
    assert loaded is not None
    before, after = trajectory_rows(traj), trajectory_rows(loaded)
    assert [r.input_ids for r in after] == [r.input_ids for r in before]
    assert [r.agent_mask for r in after] == [r.agent_mask for r in before]
    for a, b in zip(after, before, strict=True):
        assert np.allclose(a.behaviour_logprobs, b.behaviour_logprobs, equal_nan=True)


def test_heldout_trajectories_never_pass(tmp_path):
    train = Trajectory(task_id="train-1", env_id="e")
    held = Trajectory(task_id="held-1", env_id="e")
    assert exclude_heldout([train, held], {"held-1"}) == [train]
    with pytest.raises(ConfigError, match="held-out"):
        exclude_heldout([train, held], {"held-1"}, strict=True)
    # what a trainer reads from a run store: the store's split decides, token-exact episodes on both
    on_train, on_held = dialogue(2), dialogue(2)
    on_train.task_id, on_held.task_id = "train-1", "held-1"
    with Store(tmp_path) as store:
        store.add_tasks([Task(id="train-1", family="f", prompt="p"),
                         Task(id="held-1", family="f", prompt="p", split="heldout")])
        for traj in (on_train, on_held):
            store.add_trajectory(traj)
        kept, stats = candidate_trajectories(store)
    assert [t.id for t in kept] == [on_train.id]
    assert stats["data/found"] == 2 and stats["data/left_out_heldout"] == 1


def test_an_evaluations_episodes_never_pass_whatever_their_tasks_split(tmp_path):
    """A transfer set read from a user's file may put its tasks in the train split: its episodes are
    still an evaluation's, and neither a trainer reading the whole store nor an export takes them."""
    trained, scored = dialogue(2), dialogue(2)
    trained.task_id, scored.task_id = "train-1", "user-1"
    trained.run_id, scored.run_id = "run", "run/transfer/mine"
    with Store(tmp_path) as store:
        store.create_run("run", kind="loop")
        store.create_run("run/transfer/mine", kind="eval")
        store.add_tasks([Task(id="train-1", family="f", prompt="p"), Task(id="user-1", family="f", prompt="p")])
        for traj in (trained, scored):
            store.add_trajectory(traj)
        kept, stats = candidate_trajectories(store)
        assert [t.id for t in kept] == [trained.id]
        assert stats["data/found"] == 2 and stats["data/left_out_eval"] == 1
        assert [t.id for t in store.trajectories(include_eval=False)] == [trained.id]
        assert len(store.to_dataset(include_eval=False)) == 1 and len(store.to_dataset()) == 2
        assert store.runs(include_eval=False) == ["run"]

