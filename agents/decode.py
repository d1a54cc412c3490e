"""The padded path's decode loop: a row that has ended leaves the batch instead of riding along.

``model.generate`` keeps every row of a padded batch until the last one ends, so a batch whose
replies range from 20 to 160 tokens pays for 160 full-width steps: on a CPU, where the linear layers
are almost all of a step's time, most of that work is for rows already finished. ``decode`` runs
the same steps itself (the prompts' last tokens fed as a batch onto a prefilled cache, positions
from the attention mask, one token a row per step) and drops finished rows from the batch, the
cache and the mask. Dropping copies the cache, so it waits until an eighth of the batch has ended.

Sampling is the same as the generate path's processors: the log-probability recorded for a token
is ``log_softmax(logits / temperature)`` (temperature 1 when greedy) before top-k / top-p; sampled
tokens come from the Gumbel-max trick with one seeded generator per row, so a row's sample does not
depend on which other rows share its batch or when they leave.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Decoded", "RowSampler", "decode"]

_DROP_SHARE = 8  # drop finished rows once they are this fraction (1/n) of the batch


class RowSampler:
    """Next tokens for a batch of rows: greedy argmax, or temperature / top-k / top-p and Gumbel noise
    drawn from the row's own generator (seeded from ``seed`` and the row's number)."""

    def __init__(self, *, temperature: float, top_k: int, top_p: float, seed: int | None, rows: int,
                 device: Any) -> None:
        import torch

        self.greedy = temperature == 0
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.generators: list[Any] = []
        if not self.greedy:
            base = seed if seed is not None else int(torch.randint(0, 2**62, ()).item())
            for row in range(rows):
                generator = torch.Generator(device=device)
                generator.manual_seed((base * 1_000_003 + row) % 2**63)
                self.generators.append(generator)

    def __call__(self, scores: Any, rows: Sequence[int]) -> Any:
        import torch

        if self.greedy:
            return scores.argmax(dim=-1)
        scores = scores / self.temperature
        if self.top_k:
            kth = torch.topk(scores, min(self.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if self.top_p < 1:
            ordered, order = torch.sort(scores, descending=True, dim=-1)
            probs = ordered.softmax(dim=-1)
            drop = probs.cumsum(dim=-1) - probs >= self.top_p  # keep the smallest set reaching top_p
            scores = scores.masked_fill(torch.zeros_like(drop).scatter(1, order, drop), float("-inf"))
        uniform = torch.stack([torch.rand(scores.shape[-1], generator=self.generators[r], device=scores.device)
                               for r in rows])
        uniform.clamp_(1e-10, 1.0 - 1e-7)
        return (scores - torch.log(-torch.log(uniform))).argmax(dim=-1)


@dataclass
class Decoded:
    """Per row, in the order given: generated ids, their log-probabilities (or None), and how many of
    the generated ids were fed back (their keys/values are in ``kv``)."""

    tokens: list[list[int]]
    logprobs: list[list[float] | None]
    fed: list[int]
    kv: list[list[tuple[Any, Any]] | None]


def decode(model: Any, layers: list[Any], prompt_ids: Sequence[Sequence[int]], *, width: int, max_new_tokens: int,
           eos_ids: frozenset[int], sampler: RowSampler, logprob_temperature: float | None,
           stopped: Callable[[list[int]], bool] | None = None, keep_kv: bool = False) -> Decoded:
    """Decode onto ``layers`` (``kvcache`` growing layers holding every prompt but its last token,
    left-padded to ``width``) until each row ends: an end-of-sequence id, ``stopped(ids)`` or
    ``max_new_tokens``. With ``keep_kv`` each row's keys/values of its prompt and fed tokens are
    returned (cloned as it leaves), for the prefix cache."""
    import torch
    from transformers import DynamicCache

    n = len(prompt_ids)
    device = model.device
    mask = torch.zeros((n, width + max_new_tokens), dtype=torch.long, device=device)
    for i, ids in enumerate(prompt_ids):
        mask[i, width - len(ids):width] = 1
    positions = torch.tensor([[len(ids) - 1] for ids in prompt_ids], device=device)
    feed = torch.tensor([[ids[-1]] for ids in prompt_ids], device=device)
    rows = list(range(n))  # batch position -> row
    tokens: list[list[int]] = [[] for _ in range(n)]
    logprobs: list[list[float] | None] = [[] if logprob_temperature is not None else None for _ in range(n)]
    fed = [0] * n
    kv: list[list[tuple[Any, Any]] | None] = [None] * n
    done: set[int] = set()
    past: Any = DynamicCache()
    past.layers = layers

    def leave(positions_out: list[int]) -> None:
        if keep_kv:
            for p in positions_out:
                row = rows[p]
                start, stop = width - len(prompt_ids[row]), width + fed[row]
                kv[row] = [(layer.keys[p, :, start:stop].clone(), layer.values[p, :, start:stop].clone())
                           for layer in past.layers]

    step = 0
    while rows:
        column = width + step
        logits = model(input_ids=feed, attention_mask=mask[:, :column], position_ids=positions,
                       past_key_values=past, use_cache=True, logits_to_keep=1).logits[:, -1, :].float()
        chosen = sampler(logits, rows)
        if logprob_temperature is not None:
            picked = torch.log_softmax(logits / logprob_temperature, dim=-1).gather(1, chosen[:, None])[:, 0]
        for p, row in enumerate(rows):
            if row in done:
                continue
            token = int(chosen[p])
            tokens[row].append(token)
            if logprob_temperature is not None:
                logprobs[row].append(float(picked[p]))  # type: ignore[union-attr]
            if token in eos_ids or len(tokens[row]) >= max_new_tokens or (stopped is not None and stopped(tokens[row])):
                done.add(row)
        finished = [p for p, row in enumerate(rows) if row in done]
        if len(finished) == len(rows):
            leave(finished)
            break
        if len(finished) * _DROP_SHARE >= len(rows):
            leave(finished)
            keep = [p for p in range(len(rows)) if rows[p] not in done]
            index = torch.tensor(keep, device=device)
            for layer in past.layers:
                layer.select(index)
            mask, positions, chosen = mask[index], positions[index], chosen[index]
            rows = [rows[p] for p in keep]
        mask[:, column] = 1
        for row in rows:
            if row not in done:
                fed[row] += 1
        positions = positions + 1
        feed = chosen[:, None]
        step += 1
    return Decoded(tokens=tokens, logprobs=logprobs, fed=fed, kv=kv)
