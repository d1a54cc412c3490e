"""Training rows from the store's token-exact trajectories, and the masks that go with them.

A trajectory becomes one or more ``Sequence`` rows built from the ids the policy saw and produced
(``Turn.prompt_ids`` / ``Turn.completion_ids``); text is never re-tokenised. ``agent_mask`` is true
on exactly the agent's completion tokens, so the prompt, the instructions and every observation
are masked out of the loss.

Turns are merged into one row while each turn's prompt starts with the previous row verbatim
(an agent that keeps the whole dialogue in its prompt): one forward pass then covers every turn,
in exactly the context the policy saw. Where a prompt was rebuilt (history trimmed, new skills
retrieved) the turn starts a new row with its own prompt, so the context is still exact.

A trajectory that succeeded at a later attempt of a self-debugging env (``correction_turn``) can
also give a first-attempt target (``correction_row``): the first prompt followed by the attempt
that passed, so test-time feedback can become first-attempt skill (RISE, SCoRe).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from selfgym.errors import ConfigError
from selfgym.types import Trajectory

__all__ = [
    "Batch",
    "TokenRow",
    "collate",
    "correction_row",
    "correction_turn",
    "exclude_heldout",
    "is_token_exact",
    "minibatches",
    "sft_labels",
    "trajectory_rows",
]

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


@dataclass
class TokenRow:
    """One training row: token ids and, per token, what the agent did there.

    Attributes:
        input_ids: the tokens, prompt first.
        agent_mask: true where the agent produced the token (its completion), false elsewhere.
        behaviour_logprobs: the sampling policy's log-probability of each agent token; NaN where
            the backend gave none and on non-agent tokens.
        turn_index: the turn each agent token belongs to; -1 on non-agent tokens.
        trajectory_id: the trajectory the row comes from.
        cut_tokens: agent tokens dropped because the row was longer than ``max_length``.
    """

    input_ids: list[int]
    agent_mask: list[bool]
    behaviour_logprobs: list[float]
    turn_index: list[int]
    trajectory_id: str
    cut_tokens: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def n_agent_tokens(self) -> int:
        return sum(self.agent_mask)

    def extend(self, ids: Sequence[int], *, turn: int | None = None, logprobs: Sequence[float] | None = None) -> None:
        """Append context tokens (``turn`` None) or the agent's completion of turn ``turn``."""
        agent = turn is not None
        self.input_ids.extend(ids)
        self.agent_mask.extend([agent] * len(ids))
        self.turn_index.extend([turn if turn is not None else -1] * len(ids))
        if agent and logprobs is not None:
            self.behaviour_logprobs.extend(float(x) for x in logprobs)
        else:
            self.behaviour_logprobs.extend([math.nan] * len(ids))

    def truncate(self, max_length: int) -> None:
        """Cut the row to ``max_length`` tokens, keeping the start; count the agent tokens lost."""
        if len(self) <= max_length:
            return
        self.cut_tokens += sum(self.agent_mask[max_length:])
        for name in ("input_ids", "agent_mask", "behaviour_logprobs", "turn_index"):
            del getattr(self, name)[max_length:]


def is_token_exact(traj: Trajectory) -> bool:
    """Whether every turn carries the ids the policy produced (scripted agents' turns do not)."""
    return bool(traj.turns) and all(turn.completion_ids for turn in traj.turns)


def trajectory_rows(traj: Trajectory, *, max_length: int | None = None, merge_turns: bool = True,
                    label_turns: Collection[int] | None = None) -> list[TokenRow]:
    """The training rows of one trajectory.

    Args:
        max_length: longest row; a turn that would push a merged row past it starts a new row, and
            a single turn longer than it is cut at the end (the cut is counted in ``cut_tokens``).
        merge_turns: merge turns whose prompt continues the previous row (see the module docstring).
        label_turns: the turns whose completions are agent tokens (None: every turn); the others'
            completions stay in the rows as context, and a row left without agent tokens is dropped.

    Raises:
        ValueError: a turn has no ``completion_ids`` (the trajectory is not token-exact).
    """
    rows: list[TokenRow] = []
    row: TokenRow | None = None
    for k, turn in enumerate(traj.turns):
        if not turn.completion_ids:
            raise ValueError(
                f"trajectory {traj.id} turn {k} has no completion_ids: trainers need token-exact turns from an "
                "LLM policy; filter trajectories with is_token_exact()")
        prompt, completion = turn.prompt_ids, turn.completion_ids
        continues = (
            merge_turns and row is not None and len(prompt) >= len(row)
            and (max_length is None or len(prompt) + len(completion) <= max_length)
            and prompt[: len(row)] == row.input_ids
        )
        if continues:
            assert row is not None
            row.extend(prompt[len(row):])
        else:
            if row is not None:
                rows.append(row)
            row = TokenRow(input_ids=[], agent_mask=[], behaviour_logprobs=[], turn_index=[], trajectory_id=traj.id)
            row.extend(prompt)
        if label_turns is None or k in label_turns:
            row.extend(completion, turn=k, logprobs=turn.logprobs)
        else:
            row.extend(completion)
    if row is not None:
        rows.append(row)
    if max_length is not None:
        for r in rows:
            r.truncate(max_length)
    return [r for r in rows if r.n_agent_tokens]


def correction_turn(traj: Trajectory) -> int | None:
    """The turn whose submission passed, when ``traj`` succeeded after a failed attempt; else None.

    Envs that grade repeated submissions (``selfgym/Code-v0``) record the attempt number in each
    submission's ``Turn.info["attempt"]``, and end the episode on the one that passes: in a
    successful trajectory it is the last turn, and an attempt number above 1 means earlier
    attempts failed. First-attempt successes, failures, and envs without attempts (whose earlier
    turns are steps towards one answer, not discarded tries) give None.
    """
    if not traj.success or traj.aborted or not traj.turns:
        return None
    last = len(traj.turns) - 1
    attempt = traj.turns[last].info.get("attempt")
    return last if attempt is not None and int(attempt) > 1 else None


def correction_row(traj: Trajectory, *, max_length: int | None = None) -> TokenRow | None:
    """A first-attempt target from a trajectory that succeeded at a later attempt, else None.

    The row is the first turn's ``prompt_ids`` followed by the passing turn's ``completion_ids``
    (as produced, never re-tokenised); only the latter are agent tokens. Their behaviour
    log-probabilities are NaN: the policy sampled them after feedback, not in this context.
    """
    k = correction_turn(traj)
    if k is None:
        return None
    if not traj.turns[k].completion_ids:
        raise ValueError(f"trajectory {traj.id} turn {k} has no completion_ids: trainers need token-exact turns")
    row = TokenRow(input_ids=[], agent_mask=[], behaviour_logprobs=[], turn_index=[], trajectory_id=traj.id)
    row.extend(traj.turns[0].prompt_ids)
    row.extend(traj.turns[k].completion_ids, turn=k)
    if max_length is not None:
        row.truncate(max_length)
    return row if row.n_agent_tokens else None


def sft_labels(row: TokenRow) -> list[int]:
    """Labels in the Hugging Face convention: the token id on agent tokens, -100 elsewhere."""
    return [t if agent else IGNORE_INDEX for t, agent in zip(row.input_ids, row.agent_mask, strict=True)]


@dataclass
class Batch:
    """Right-padded tensors of a list of rows (all ``[rows, length]``)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    agent_mask: torch.Tensor
    behaviour_logprobs: torch.Tensor
    token_advantages: torch.Tensor
    rows: list[TokenRow] = field(default_factory=list)

    def to(self, device: torch.device | str) -> Batch:
        moved = {name: getattr(self, name).to(device) for name in
                 ("input_ids", "attention_mask", "agent_mask", "behaviour_logprobs", "token_advantages")}
        return Batch(**moved, rows=self.rows)

    @property
    def labels(self) -> torch.Tensor:
        """Token ids on agent tokens, -100 elsewhere (what the fused LM head scores)."""
        return self.input_ids.masked_fill(~self.agent_mask, IGNORE_INDEX)


def collate(rows: Sequence[TokenRow], *, pad_id: int, advantages: Sequence[Sequence[float]] | None = None) -> Batch:
    """Pad rows on the right into one ``Batch``.

    Args:
        advantages: per row, one advantage per token (0 on non-agent tokens); zeros when None.
    """
    if not rows:
        raise ValueError("collate needs at least one row")
    n, length = len(rows), max(len(r) for r in rows)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    attention = torch.zeros((n, length), dtype=torch.long)
    agent = torch.zeros((n, length), dtype=torch.bool)
    behaviour = torch.full((n, length), math.nan, dtype=torch.float32)
    adv = torch.zeros((n, length), dtype=torch.float32)
    for i, row in enumerate(rows):
        m = len(row)
        ids[i, :m] = torch.tensor(row.input_ids, dtype=torch.long)
        attention[i, :m] = 1
        agent[i, :m] = torch.tensor(row.agent_mask, dtype=torch.bool)
        behaviour[i, :m] = torch.tensor(row.behaviour_logprobs, dtype=torch.float32)
        if advantages is not None:
            adv[i, :m] = torch.tensor(advantages[i], dtype=torch.float32)
    return Batch(input_ids=ids, attention_mask=attention, agent_mask=agent, behaviour_logprobs=behaviour,
                 token_advantages=adv, rows=list(rows))


def minibatches(n_items: int, *, batch_size: int, micro_batch_size: int, rng: np.random.Generator,
                lengths: Sequence[int] | None = None) -> list[list[list[int]]]:
    """Shuffled optimizer batches of item indices, each split into micro-batches.

    Within an optimizer batch the items are sorted by ``lengths`` before the split, so rows of
    similar length share a micro-batch and padding stays small.
    """
    order = rng.permutation(n_items).tolist()
    batches = []
    for start in range(0, n_items, batch_size):
        chunk = order[start:start + batch_size]
        if lengths is not None:
            chunk.sort(key=lambda i: lengths[i])
        batches.append([chunk[j:j + micro_batch_size] for j in range(0, len(chunk), micro_batch_size)])
    return batches


def exclude_heldout(trajectories: Iterable[Trajectory], heldout_task_ids: set[str], *,
                    strict: bool = False) -> list[Trajectory]:
    """Drop trajectories on held-out tasks (they never enter training data).

    Args:
        strict: raise instead of dropping, for callers that should never have been given one.
    """
    kept, dropped = [], 0
    for traj in trajectories:
        if traj.task_id in heldout_task_ids:
            if strict:
                raise ConfigError(f"trajectory {traj.id} is on held-out task {traj.task_id}: held-out tasks "
                                  "never enter training data")
            dropped += 1
        else:
            kept.append(traj)
    if dropped:
        log.info("left out %d trajectories on held-out tasks", dropped)
    return kept
