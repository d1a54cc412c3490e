"""Prefix reuse for the transformers backend: KV caches kept between ``generate`` calls.

A multi-turn episode's next prompt is its last prompt, the reply, the env's answer and the next
user turn, so most of it was already run through the model. ``PrefixCache`` keeps, for recently
fed token sequences, the keys and values every layer computed for them (a small LRU bounded in
bytes). It is keyed by the token ids alone: no episode ids, so the OpenAI-compatible server gets the
same reuse for a request that extends an earlier one, and episodes sharing a system prompt share
its keys and values.

One padded generate call with reuse (``prefill``, ``decode``, then ``remember``):

1. Each prompt is matched against the cache (and against the prompts of the batch prefilled before
   it): the longest common prefix of token ids wins. Its keys/values are cropped to that prefix, and
   only the rest of the prompt, up to its last token, is run through the model (one row at a time,
   no padding). A trimmed history (old turns dropped) matches up to its first changed token and is
   recomputed from there.
2. The rows' caches are stacked, left-padded to the batch width, into growing cache layers;
   ``agents.decode.decode`` then feeds the prompts' last tokens as a batch and decodes, dropping
   rows as they end. Positions come from the attention mask, so a row's keys (rotary embedding
   applied) are the same whatever padding it gets.
3. As a row ends its prompt and generated tokens are cloned out with their keys/values, and after
   the call stored (``remember``); the entry a row continued from is dropped (the new one covers it).

Greedy decoding gives the same tokens as without reuse, and log-probabilities within float
rounding (the same sums in a different order); ``tests/test_kv_reuse.py`` checks it turn by turn.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# A row continues an entry when its prompt is longer and shares all of the entry's prompt but this
# many tokens: re-tokenised, the reply can merge with the template's last tokens ("assistant\n").
_SLACK = 8

__all__ = ["CacheEntry", "Prefill", "PrefixCache", "common_prefix", "prefill", "remember", "supports_reuse"]


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """The length of the longest common prefix of two 1-d id arrays."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass(eq=False)
class CacheEntry:
    """Keys and values of every layer for exactly the tokens ``ids`` (``[heads, len(ids), dim]`` each)."""

    ids: np.ndarray
    prompt_len: int
    kv: list[tuple[Any, Any]]

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.kv)


class PrefixCache:
    """An LRU of ``CacheEntry`` bounded by ``max_bytes`` (the least recently used go first).

    Not thread-safe: the policy generates on one thread at a time.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[int, CacheEntry] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def tokens(self) -> int:
        return sum(len(e.ids) for e in self.entries.values())

    def match(self, ids: np.ndarray, extra: Iterable[CacheEntry] = ()) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with ``ids`` (among the cache and ``extra``), and its length."""
        best: CacheEntry | None = None
        length = 0
        for entry in [*self.entries.values(), *extra]:
            n = common_prefix(entry.ids, ids)
            if n > length:
                best, length = entry, n
        if best is not None and id(best) in self.entries:
            self.entries.move_to_end(id(best))
        return best, length

    def add(self, entry: CacheEntry) -> None:
        """Keep ``entry`` (dropping entries it extends), evicting the least recently used beyond the bound."""
        size = entry.nbytes
        if size > self.max_bytes:
            return
        for old in list(self.entries.values()):
            if len(old.ids) <= len(entry.ids) and common_prefix(old.ids, entry.ids) == len(old.ids):
                self.discard(old)
        self.entries[id(entry)] = entry
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            self.discard(next(iter(self.entries.values())))

    def discard(self, entry: CacheEntry) -> None:
        if self.entries.pop(id(entry), None) is not None:
            self.nbytes -= entry.nbytes

    def clear(self) -> None:
        self.entries.clear()
        self.nbytes = 0


def supports_reuse(model: Any) -> bool:
    """Whether ``model``'s cache is plain full attention (no sliding windows, chunks or recurrent state)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    try:
        config = model.config.get_text_config(decoder=True)
        layer_types, _ = get_layer_types_and_kwargs(config)
    except Exception:  # a config this version cannot read layer types from: no reuse, plain generation
        return False
    return not getattr(config, "is_encoder_decoder", False) and all(t == "full_attention" for t in layer_types)


@dataclass
class Prefill:
    """A batch ready for ``model.generate``: ``past`` holds every prompt but its last token, left-padded."""

    past: Any
    width: int
    cached: list[int]
    sources: list[CacheEntry | None]


def _row_forward(model: Any, source: CacheEntry | None, reused: int, ids: Sequence[int]) -> CacheEntry:
    """Keys/values of ``ids[:-1]``: the first ``reused`` from ``source``, the rest computed now."""
    import torch
    from transformers import DynamicCache

    seen = list(ids[:-1])
    data = [(k[None, :, :reused], v[None, :, :reused]) for k, v in source.kv] if source and reused else None
    cache: Any = DynamicCache(ddp_cache_data=data)
    if len(seen) > reused:
        model(input_ids=torch.tensor([seen[reused:]], device=model.device), past_key_values=cache,
              use_cache=True, logits_to_keep=1)
    kv = [(layer.keys[0], layer.values[0]) for layer in cache.layers]
    return CacheEntry(ids=np.asarray(seen, dtype=np.int64), prompt_len=len(seen), kv=kv)


@functools.cache
def _growing_layer() -> type:
    """A ``DynamicLayer`` that writes new keys into a buffer with room to spare instead of concatenating.

    ``DynamicLayer.update`` copies the whole cache at every decoded token (``torch.cat``); at a few
    thousand tokens of context that copy costs about as much as the attention that reads it.
    """
    import torch
    from transformers.cache_utils import DynamicLayer

    class GrowingLayer(DynamicLayer):
        def __init__(self, keys: Any, values: Any, length: int) -> None:
            super().__init__()
            self.buffers = (keys, values)
            self.length = length
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self.keys, self.values = keys[:, :, :length], values[:, :, :length]

        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            end = self.length + key_states.shape[-2]
            if end > self.buffers[0].shape[2]:  # out of room: double it
                self.buffers = (self._doubled(self.buffers[0]), self._doubled(self.buffers[1]))
            keys, values = self.buffers
            keys[:, :, self.length:end] = key_states
            values[:, :, self.length:end] = value_states
            self.length = end
            self.keys, self.values = keys[:, :, :end], values[:, :, :end]
            return self.keys, self.values

        def select(self, rows: Any) -> None:
            """Keep only the batch rows ``rows`` (an index tensor), in that order."""
            self.buffers = (self.buffers[0].index_select(0, rows), self.buffers[1].index_select(0, rows))
            self.keys, self.values = self.buffers[0][:, :, :self.length], self.buffers[1][:, :, :self.length]

        @staticmethod
        def _doubled(buffer: Any) -> Any:
            return torch.cat([buffer, torch.zeros_like(buffer)], dim=2)

    return GrowingLayer


def prefill(model: Any, cache: PrefixCache, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, *,
            reuse: bool = True) -> Prefill:
    """Run each prompt but its last token through the model, reusing the longest cached prefix
    (``reuse=False``: nothing is reused, not even within the batch).

    The batch's cache has room for ``max_new_tokens`` more tokens a row, so decoding never copies it.
    """
    import torch
    from transformers import DynamicCache

    rows: list[CacheEntry] = []
    cached: list[int] = []
    sources: list[CacheEntry | None] = []
    for ids in prompt_ids:
        key = np.asarray(ids[:-1], dtype=np.int64)
        source, reused = cache.match(key, rows) if reuse else (None, 0)
        rows.append(_row_forward(model, source, reused, ids))
        cached.append(reused)
        sources.append(source if source is not None and id(source) in cache.entries else None)
    width = max(len(ids) for ids in prompt_ids)
    layer_class = _growing_layer()
    layers = []
    for layer in range(len(rows[0].kv)):
        k0 = rows[0].kv[layer][0]
        shape = (len(rows), k0.shape[0], width + max_new_tokens, k0.shape[2])
        keys = torch.zeros(shape, dtype=k0.dtype, device=k0.device)
        values = torch.zeros_like(keys)
        for i, row in enumerate(rows):
            k, v = row.kv[layer]
            keys[i, :, width - 1 - k.shape[1]:width - 1] = k
            values[i, :, width - 1 - v.shape[1]:width - 1] = v
        layers.append(layer_class(keys, values, width - 1))
    past: Any = DynamicCache()
    past.layers = layers
    return Prefill(past=past, width=width, cached=cached, sources=sources)


def remember(cache: PrefixCache, batch: Prefill, prompt_ids: Sequence[Sequence[int]], decoded: Any) -> None:
    """Store each row's fed tokens (its prompt, then the generated tokens fed back) with the
    keys/values ``decoded`` (an ``agents.decode.Decoded`` run with ``keep_kv``) took as the row ended."""
    for i, ids in enumerate(prompt_ids):
        kv = decoded.kv[i]
        if kv is None:
            continue
        tokens = np.asarray(list(ids) + list(decoded.tokens[i][:decoded.fed[i]]), dtype=np.int64)
        source = batch.sources[i]
        if source is not None and len(ids) > source.prompt_len and batch.cached[i] >= source.prompt_len - _SLACK:
            cache.discard(source)  # this row continued it: the new entry covers what it held
        cache.add(CacheEntry(ids=tokens, prompt_len=len(ids), kv=kv))
