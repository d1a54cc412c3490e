"""Helpers for tests of anything that needs a policy: a tiny real model, and scripted policies.

- ``tiny_policy()``: a ``TransformersPolicy`` over the tiny random Llama (``make_tiny_model``),
  built once per process. Real tokenizer, real generation, useless answers.
- ``FunctionPolicy``: replies computed by a Python function of the chat, tokenised with a real
  tokenizer so every ``Completion`` is token-consistent. For tests about loops (rollouts,
  reflections, retries), not about the model.
- ``CountingPolicy``: wraps a policy and records each ``generate`` call's batch size.
- ``make_tiny_adapter(dir)``: a LoRA adapter on the tiny model that changes its outputs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfgym.types import Completion

from .policy import ChatMessage, Policy, SamplingParams, cut_at_stop, to_chat

__all__ = ["CountingPolicy", "FunctionPolicy", "make_tiny_adapter", "tiny_policy", "tiny_tokenizer"]


@functools.cache
def tiny_policy(**config: Any) -> Any:
    """The shared tiny-model ``TransformersPolicy`` (CPU)."""
    from selfgym.models import tiny_model_dir

    from .hf import TransformersConfig, TransformersPolicy

    return TransformersPolicy.load(TransformersConfig(model=str(tiny_model_dir()), device="cpu", name="tiny",
                                                      **config))


def make_tiny_adapter(directory: str | Path, *, seed: int = 0, rank: int = 4) -> Path:
    """Write a LoRA adapter for the tiny model with non-zero weights (so it changes the outputs)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from selfgym.models import load_model, tiny_model_dir

    base, _ = load_model(tiny_model_dir(), device="cpu")
    torch.manual_seed(seed)
    config = LoraConfig(r=rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(str(directory))
    return Path(directory)


@functools.cache
def tiny_tokenizer() -> Any:
    from selfgym.models import load_tokenizer, tiny_model_dir

    return load_tokenizer(tiny_model_dir())


class FunctionPolicy:
    """A policy whose reply to a chat is ``reply(messages)``.

    Token ids come from ``tokenizer`` (the embedded one by default): ``prompt_ids`` are the chat
    template's, ``completion_ids`` the reply's plus EOS, with log-probability 0 for each.
    """

    def __init__(self, reply: Callable[[list[dict[str, Any]]], str], *, name: str = "function",
                 tokenizer: Any = None) -> None:
        self.reply = reply
        self.name = name
        self._tokenizer = tokenizer
        self.calls: list[int] = []

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = tiny_tokenizer()
        return self._tokenizer

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return len(self._prompt_ids([to_chat(m) for m in messages]))

    def _prompt_ids(self, chat: list[dict[str, Any]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: SamplingParams) -> list[Completion]:
        self.calls.append(len(prompts))
        out = []
        for prompt in prompts:
            chat = [to_chat(m) for m in prompt]
            text, stopped = cut_at_stop(self.reply(chat), params.stop)
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])[: params.max_tokens]
            finish = "length" if len(ids) == params.max_tokens and not stopped else "stop"
            if finish == "stop":
                ids.append(self.tokenizer.eos_token_id)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out.append(Completion(text=text, prompt_ids=self._prompt_ids(chat), completion_ids=ids,
                                  logprobs=[0.0] * len(ids), finish_reason=finish))
        return out


class CountingPolicy:
    """Passes calls to ``policy`` and records the batch size and duration of each ``generate``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name
        self.calls: list[int] = []
        self.prompts: list[list[list[dict[str, Any]]]] = []
        self.seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.policy, name)

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.policy.count_tokens(messages)

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: SamplingParams) -> list[Completion]:
        self.calls.append(len(prompts))
        self.prompts.append([[to_chat(m) for m in p] for p in prompts])
        start = time.perf_counter()
        try:
            return self.policy.generate(prompts, params)
        finally:
            self.seconds += time.perf_counter() - start
