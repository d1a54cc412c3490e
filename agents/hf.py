"""``TransformersPolicy``: a Hugging Face causal LM as a batched, token-exact policy.

Two generation paths, chosen by ``TransformersConfig.batching``:

- ``generate``: a left-padded batch (prompts sorted by length, split into chunks of
  ``max_batch_size``) decoded by ``agents/decode.py``, which drops a row from the batch when it
  ends (end of sequence, stop string, length) instead of computing it until the longest row is
  done; models whose cache is not plain full attention, or a ``cache_implementation``, go through
  ``model.generate``. Log-probabilities are recorded as the tokens are sampled (one
  vocabulary-sized row per prompt is held, never the whole history); sampling uses the Gumbel-max
  trick with seeded generators instead of ``torch.multinomial``.
- ``continuous``: transformers' continuous batching (``model.generate_batch``, paged KV cache),
  the fast path on a GPU. ``auto`` picks it on CUDA and ``generate`` elsewhere.

The ``generate`` path reuses keys/values across calls (``agents/kvcache.py``): a prompt that
extends one fed before (the next turn of an episode, a shared system prompt, a server request that
continues an earlier one) prefills only its new tokens. ``prefix_cache_mb`` bounds the memory; 0
switches it off. ``stats()`` counts prefilled, cached and generated tokens and time in the model.

Log-probabilities are those of the sampling distribution before top-k / top-p truncation:
``log_softmax(logits / temperature)`` (temperature 1 when greedy), the quantity TRL's GRPO
re-computes. The continuous path reports them after truncation, which is the same when
``top_k=0`` and ``top_p=1``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from selfgym.errors import ConfigError
from selfgym.types import Completion

from . import kvcache
from .decode import RowSampler, decode
from .policy import ChatMessage, GenerationStats, PolicyError, SamplingParams, cut_at_stop, to_chat

__all__ = ["TransformersConfig", "TransformersPolicy"]

_PAGE_SIZE = 256
_ENCODE_CACHE_SIZE = 1024
_Row = tuple[list[int], Any, int]  # generated ids, their log-probs (or None), prompt tokens taken from the cache


@dataclass(frozen=True, kw_only=True)
class TransformersConfig:
    """Settings of the ``transformers`` policy backend."""

    model: str = field(default="embedded", metadata={"help": "'embedded', a checkpoint dir or a LoRA adapter dir"})
    device: str | None = field(default=None, metadata={"help": "cpu | cuda | cuda:N (default: cuda if available)"})
    batching: Literal["auto", "generate", "continuous"] = field(
        default="auto", metadata={"help": "generation path: continuous batching (GPU), padded generate, or auto"})
    max_batch_size: int = field(default=64, metadata={"help": "prompts per padded generate call"})
    cache_implementation: str | None = field(
        default=None, metadata={"help": "KV cache of the generate path, e.g. 'static' (torch.compile, GPU)"})
    max_context: int = field(default=4096, metadata={"help": "longest prompt + completion (sizes the cache)"})
    name: str | None = field(default=None, metadata={"help": "policy id in trajectories (default: model)"})
    prefix_cache_mb: int = field(
        default=4096, metadata={"help": "keys/values kept for prompts that extend earlier ones (MB; 0: off)"})
    dtype: str | None = field(default=None, metadata={
        "help": "float32 | bfloat16 | float16 weights and keys/values (default: bfloat16 on CUDA, float32 on CPU; "
                "bfloat16 decodes about 2x faster on a CPU with AMX, with other greedy outputs)"})

    def __post_init__(self) -> None:
        if self.batching not in ("auto", "generate", "continuous"):
            raise ConfigError(f"batching must be auto, generate or continuous, got {self.batching!r}")
        if self.max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.prefix_cache_mb < 0:
            raise ConfigError(f"prefix_cache_mb must be >= 0 (0 switches reuse off), got {self.prefix_cache_mb}")
        if self.dtype not in (None, "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")


class _LogprobRecorder:
    """A logits processor that records ``log_softmax(logits / T)`` of each sampled token.

    It sees the raw logits (it runs before the temperature / top-k / top-p warpers) and learns
    which token was sampled at the next call, from the last column of ``input_ids``.
    """

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature if temperature > 0 else 1.0
        self.columns: list[Any] = []
        self.last: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.last is not None:
            self.columns.append(self.last.gather(1, input_ids[:, -1:]).squeeze(1))
        self.last = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, sequences: Any) -> Any:
        """A ``[batch, new_tokens]`` tensor, given the final sequences."""
        import torch

        if self.last is not None:
            self.columns.append(self.last.gather(1, sequences[:, -1:]).squeeze(1))
            self.last = None
        return torch.stack(self.columns, dim=1) if self.columns else None


class _GumbelSampler:
    """The last logits processor of sampled generation: Gumbel noise, so greedy argmax draws a sample.

    ``argmax(scores + Gumbel)`` is distributed as ``softmax(scores)`` (the Gumbel-max trick, as in
    vLLM's sampler); it replaces ``torch.multinomial``, which dominates CPU decoding time at a
    50k vocabulary. The noise comes from its own seeded generator, so a seeded call repeats.
    """

    def __init__(self, seed: int, device: Any) -> None:
        import torch

        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        uniform = torch.rand(scores.shape, generator=self.generator, device=scores.device, dtype=torch.float32)
        uniform.clamp_(1e-10, 1.0 - 1e-7)
        return scores.float() - torch.log(-torch.log(uniform))


class TransformersPolicy:
    """A local Hugging Face model as a ``Policy``.

    Args:
        model: a causal LM (``PreTrainedModel`` or ``PeftModel``).
        tokenizer: its tokenizer; it must have a chat template.
        config: backend settings (``model`` there only names the policy).
    """

    def __init__(self, model: Any, tokenizer: Any, config: TransformersConfig | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or TransformersConfig()
        self.name = self.config.name or str(self.config.model)
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(f"the tokenizer of {self.name} has no chat template; use an instruct model")
        ids = model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        self.eos_ids = frozenset(ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.tokens_generated = 0
        self._cb_key: tuple[Any, ...] | None = None
        self._encoded: dict[str, list[int]] = {}
        self.prefix_cache = kvcache.PrefixCache(self.config.prefix_cache_mb * 2**20)
        self._loopable = kvcache.supports_reuse(model)
        self._stats = GenerationStats()
        self._cached_now = 0

    def use_model(self, model: Any) -> None:
        """Generate with ``model`` from now on (e.g. the trainer's, LoRA updated in place): in eval
        mode, with the KV cache on again (a trainer switches it off for gradient checkpointing)."""
        self.model = model
        model.eval()
        base = getattr(model, "get_base_model", lambda: model)()
        base.config.use_cache = True
        self.prefix_cache.clear()  # keys/values of the old weights
        self._loopable = kvcache.supports_reuse(model)

    def copy_in(self, dtype: str) -> TransformersPolicy:
        """A policy generating with a copy of the current weights in ``dtype`` (float32, bfloat16 or
        float16; LoRA merged into the copy), e.g. bfloat16 for an evaluation, 2-3x faster than
        float32 at a batch of 64 on a CPU. This policy's weights are not touched."""
        import torch

        config = dataclasses.replace(self.config, dtype=dtype)  # checks the name
        model = copy.deepcopy(self.model)
        if hasattr(model, "merge_and_unload"):  # a PEFT model: one plain model generates faster
            model = model.merge_and_unload()
        policy = TransformersPolicy(model.to(getattr(torch, dtype)), self.tokenizer, config)
        policy.use_model(policy.model)  # eval mode, KV cache on
        return policy

    @property
    def _reusable(self) -> bool:
        """Whether keys/values are kept between calls: a cache bound and a plain full-attention model."""
        return self.config.prefix_cache_mb > 0 and self._loopable

    def stats(self) -> GenerationStats:
        """Totals since the policy was made (see ``GenerationStats``)."""
        return self._stats

    @classmethod
    def load(cls, config: TransformersConfig) -> TransformersPolicy:
        """Load the model named by ``config.model`` (see ``selfgym.models.load_model``)."""
        import torch

        from selfgym.models import load_model

        dtype = getattr(torch, config.dtype) if config.dtype else None
        model, tokenizer = load_model(config.model, device=config.device, dtype=dtype)
        return cls(model, tokenizer, config)

    @property
    def device(self) -> Any:
        return self.model.device

    @property
    def path(self) -> str:
        """Which generation path ``generate`` takes on this device."""
        if self.config.batching != "auto":
            return self.config.batching
        on_gpu = self.device.type == "cuda" and hasattr(self.model, "generate_batch")
        return "continuous" if on_gpu else "generate"

    # ------------------------------------------------------------------ prompts
    def encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt ids of a chat: the chat template with the assistant turn opened.

        Recent results are cached by text: an agent counts a prompt's tokens, then generates from it.
        """
        text = self.tokenizer.apply_chat_template([to_chat(m) for m in messages], tokenize=False,
                                                  add_generation_prompt=True)
        ids = self._encoded.get(text)
        if ids is None:
            ids = self._encoded[text] = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            while len(self._encoded) > _ENCODE_CACHE_SIZE:
                self._encoded.pop(next(iter(self._encoded)))
        return list(ids)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self.encode(messages))

    # ------------------------------------------------------------------ generation
    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: SamplingParams) -> list[Completion]:
        """One completion per chat prompt, in order (see the module docstring for the two paths)."""
        return self.generate_ids([self.encode(p) for p in prompts], params)

    def generate_ids(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[Completion]:
        """Like ``generate``, from prompt token ids (the raw batched path benchmarks compare against)."""
        if not prompt_ids:
            return []
        if any(not ids for ids in prompt_ids):
            raise ConfigError("generate: every prompt needs at least one token")
        import torch

        if params.seed is not None and self.path == "continuous":
            torch.manual_seed(params.seed)  # its sampler draws from the global generator
        start = time.perf_counter()
        self._cached_now = 0
        try:
            generate = self._continuous if self.path == "continuous" else self._chunks
            rows = generate(prompt_ids, params)
        except torch.OutOfMemoryError as exc:
            raise PolicyError(f"{self.name}: out of memory generating {len(prompt_ids)} prompts; "
                              "lower max_batch_size or max_tokens") from exc
        latency = time.perf_counter() - start
        out = [self._completion(list(ids), gen, logprobs, params, latency, cached)
               for ids, (gen, logprobs, cached) in zip(prompt_ids, rows, strict=True)]
        self.tokens_generated += sum(len(c.completion_ids) for c in out)
        prompt_tokens = sum(len(ids) for ids in prompt_ids)
        self._stats = self._stats + GenerationStats(
            calls=1, prompts=len(prompt_ids), prefilled_tokens=prompt_tokens - self._cached_now,
            cached_tokens=self._cached_now, generated_tokens=sum(len(c.completion_ids) for c in out), model_s=latency)
        return out

    def _chunks(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[_Row]:
        """Padded generation in chunks of ``max_batch_size`` prompts of similar length, results in order."""
        order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
        size = self.config.max_batch_size
        results: dict[int, _Row] = {}
        for number, first in enumerate(range(0, len(order), size)):
            chunk = order[first:first + size]
            seeded = params if params.seed is None else dataclasses.replace(
                params, seed=params.seed + 7919 * number)
            results.update(zip(chunk, self._padded([prompt_ids[i] for i in chunk], seeded), strict=True))
        return [results[i] for i in range(len(prompt_ids))]

    def _generation_config(self, params: SamplingParams, max_new_tokens: int) -> Any:
        from transformers import GenerationConfig

        # The generate path samples through its own processors (temperature, top-k, top-p, Gumbel
        # noise) after the log-prob recorder, so generate itself runs greedy; nothing is filled in
        # from the checkpoint's sampling defaults. The continuous path sets its knobs itself.
        return GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.0,
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id, stop_strings=list(params.stop) or None,
        )

    def _padded(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[_Row]:
        """One padded batch: our own decode loop (rows leave as they end, keys/values reused) where
        the model's cache is plain full attention, else ``model.generate``."""
        if self._loopable and not self.config.cache_implementation and min(map(len, prompt_ids)) > 1:
            return self._decoded(prompt_ids, params)
        return self._generated(prompt_ids, params)

    def _decoded(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[_Row]:
        import torch

        sampler = RowSampler(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
                             seed=params.seed, rows=len(prompt_ids), device=self.device)
        stopped = (lambda ids: self._ends_in_stop(ids, params.stop)) if params.stop else None
        with torch.inference_mode():
            batch = kvcache.prefill(self.model, self.prefix_cache, prompt_ids, params.max_tokens, reuse=self._reusable)
            self._cached_now += sum(batch.cached)
            out = decode(self.model, batch.past.layers, prompt_ids, width=batch.width, max_new_tokens=params.max_tokens,
                         eos_ids=self.eos_ids, sampler=sampler, stopped=stopped, keep_kv=self._reusable,
                         logprob_temperature=(params.temperature or 1.0) if params.logprobs else None)
            if self._reusable:
                kvcache.remember(self.prefix_cache, batch, prompt_ids, out)
        return list(zip(out.tokens, out.logprobs, batch.cached, strict=True))

    def _ends_in_stop(self, ids: list[int], stop: Sequence[str]) -> bool:
        """Whether the text of ``ids`` has reached a stop string (only the tail can be new)."""
        tail = max(len(s) for s in stop) + 4
        return cut_at_stop(self.tokenizer.decode(ids[-tail:], skip_special_tokens=True), stop)[1]

    def _generated(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[_Row]:
        import torch
        from transformers import (
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + list(ids) for ids in prompt_ids])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids])
        recorder = _LogprobRecorder(params.temperature) if params.logprobs else None
        processors = LogitsProcessorList([recorder] if recorder else [])
        if not params.greedy:
            processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k:
                processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1:
                processors.append(TopPLogitsWarper(params.top_p))
            seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, ()).item())
            processors.append(_GumbelSampler(seed, self.device))
        kwargs: dict[str, Any] = {"tokenizer": self.tokenizer} if params.stop else {}
        if self.config.cache_implementation:
            kwargs["cache_implementation"] = self.config.cache_implementation
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                generation_config=self._generation_config(params, params.max_tokens),
                logits_processor=processors, **kwargs,
            )
            logprobs = recorder.finish(sequences) if recorder else None
            gen_rows = sequences[:, width:].tolist()
        lp_rows = logprobs.tolist() if logprobs is not None else [None] * len(gen_rows)
        return [(gen, lp, 0) for gen, lp in zip(gen_rows, lp_rows, strict=True)]

    def _continuous(self, prompt_ids: Sequence[Sequence[int]], params: SamplingParams) -> list[_Row]:
        import logging

        from transformers import ContinuousBatchingConfig

        config = self._generation_config(params, params.max_tokens)
        config.stop_strings = None  # not supported there: rows are cut at the stop string afterwards
        if not params.greedy:
            config.do_sample = True
            config.temperature, config.top_k, config.top_p = params.temperature, params.top_k, params.top_p
        # The manager (paged cache, CUDA graphs) is kept between calls; it is rebuilt only when the
        # sampling settings change, and sized for the configured context, not for the first batch.
        key = (params.greedy, params.temperature, params.top_k, params.top_p, params.logprobs)
        if self._cb_key != key:
            self.model.destroy_cached_continuous_batching_manager()
            self._cb_key = key
        pages = -(-self.config.max_context // _PAGE_SIZE) + 1
        pages += pages % 2
        sizes: dict[str, Any] = {}
        if self.device.type != "cuda":  # else sized from free GPU memory; on the CPU that would be most of RAM
            sizes = {"num_blocks": pages * self.config.max_batch_size, "max_batch_tokens": self.config.max_context}
        cb_config = ContinuousBatchingConfig(
            return_logprobs=params.logprobs, page_size=_PAGE_SIZE, max_blocks_per_request=pages,
            max_requests_per_batch=self.config.max_batch_size, **sizes,
        )
        cb_logger = logging.getLogger("ContinuousBatchingLogger")
        level = cb_logger.level
        cb_logger.setLevel(logging.ERROR)  # it warns on every call that the manager is kept
        try:
            outputs = self.model.generate_batch(
                inputs=[list(ids) for ids in prompt_ids], generation_config=config,
                continuous_batching_config=cb_config, progress_bar=False, persistent_manager=True,
                max_new_tokens=params.max_tokens,
            )
        finally:
            cb_logger.setLevel(level)
        rows = list(outputs.values())
        if len(rows) != len(prompt_ids) or any(r.error for r in rows):
            errors = "; ".join(str(r.error) for r in rows if r.error) or "missing results"
            raise PolicyError(f"{self.name}: continuous batching failed: {errors}")
        return [(list(r.generated_tokens), list(r.logprobs) if params.logprobs else None, 0) for r in rows]

    # ------------------------------------------------------------------ post-processing
    def _completion(self, prompt_ids: list[int], generated: list[int], logprobs: list[float] | None,
                    params: SamplingParams, latency: float, cached: int = 0) -> Completion:
        """Cut a generated row where it ended (EOS, stop string or length) and decode it."""
        end, finish = len(generated), "length"
        for i, token in enumerate(generated):
            if token in self.eos_ids:
                end, finish = i + 1, "stop"
                break
        ids = generated[:end]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if params.stop:
            text, found = cut_at_stop(text, params.stop)
            if found:
                ids, finish = ids[:self._tokens_until_stop(ids, params.stop)], "stop"
        return Completion(text=text, prompt_ids=prompt_ids, completion_ids=ids,
                          logprobs=None if logprobs is None else [float(x) for x in logprobs[:len(ids)]],
                          finish_reason=finish, latency_s=latency, cached_tokens=cached)

    def _tokens_until_stop(self, ids: list[int], stop: Sequence[str]) -> int:
        """The fewest leading tokens whose text contains a stop string (where generation stopped)."""
        low, high = 1, len(ids)
        while low < high:
            mid = (low + high) // 2
            if cut_at_stop(self.tokenizer.decode(ids[:mid], skip_special_tokens=True), stop)[1]:
                high = mid
            else:
                low = mid + 1
        return high
