"""``OpenAIPolicy``: any OpenAI-compatible chat server as a policy (vLLM, SGLang, llama.cpp, ``selfgym serve``).

Requests run concurrently (``max_concurrency``) through the ``openai`` client, which retries
connection errors, 408/429 and 5xx answers with exponential backoff (``max_retries``). Token ids
and log-probabilities are asked for the way vLLM gives them: ``logprobs=True`` plus the
``return_token_ids`` / ``return_tokens_as_token_ids`` extensions. A server that ignores the
extensions still works; its completions then carry no token ids (they are never re-tokenised
here, so such trajectories are fine for evaluation and SFT on text, not for token-level RL).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from selfgym.errors import ConfigError
from selfgym.types import Completion

from .policy import ChatMessage, PolicyError, SamplingParams, to_chat

__all__ = ["OpenAIConfig", "OpenAIPolicy"]


@dataclass(frozen=True, kw_only=True)
class OpenAIConfig:
    """Settings of the ``openai`` policy backend."""

    base_url: str = field(metadata={"help": "server URL including /v1, e.g. http://127.0.0.1:8000/v1"})
    model: str | None = field(default=None, metadata={"help": "model name on the server (default: its first)"})
    api_key: str | None = field(default=None, metadata={"help": "API key (default: $OPENAI_API_KEY or 'EMPTY')"})
    max_concurrency: int = field(default=32, metadata={"help": "requests in flight at once"})
    max_retries: int = field(default=4, metadata={"help": "retries per request, with exponential backoff"})
    timeout_s: float = field(default=600.0, metadata={"help": "per-request timeout"})
    token_ids: bool = field(default=True, metadata={"help": "ask for token ids (vLLM's extensions)"})
    tokenizer: str | None = field(
        default=None, metadata={"help": "local tokenizer spec for exact prompt lengths (else estimated)"})
    name: str | None = field(default=None, metadata={"help": "policy id in trajectories (default: the model)"})

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"OpenAIConfig.base_url must be an http(s) URL, got {self.base_url!r}")
        if self.max_concurrency < 1:
            raise ConfigError(f"OpenAIConfig.max_concurrency must be >= 1, got {self.max_concurrency}")


def _token_id(token: str) -> int | None:
    """vLLM writes tokens as ``token_id:123`` under ``return_tokens_as_token_ids``."""
    if token.startswith("token_id:"):
        try:
            return int(token.removeprefix("token_id:"))
        except ValueError:
            return None
    return None


class OpenAIPolicy:
    """A policy served over the OpenAI chat-completions API."""

    def __init__(self, config: OpenAIConfig) -> None:
        import openai

        self.config = config
        self.client = openai.OpenAI(
            base_url=config.base_url, api_key=config.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
            max_retries=config.max_retries, timeout=config.timeout_s,
        )
        self._model = config.model
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=config.max_concurrency, thread_name_prefix="openai-policy")
        self._tokenizer: Any = None
        self.name = config.name or config.model or config.base_url
        self.tokens_generated = 0

    @property
    def model(self) -> str:
        """The served model name (asked from the server once when not configured)."""
        with self._lock:
            if self._model is None:
                try:
                    models = self.client.models.list().data
                except Exception as exc:  # the openai client raises several types for a dead server
                    raise PolicyError(f"cannot list models at {self.config.base_url}: {exc}") from exc
                if not models:
                    raise PolicyError(f"{self.config.base_url} serves no model")
                self._model = models[0].id
                if self.config.name is None:
                    self.name = self._model
            return self._model

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Exact with ``config.tokenizer``; otherwise about four characters a token plus a few per message."""
        chat = [to_chat(m) for m in messages]
        if self.config.tokenizer:
            if self._tokenizer is None:
                from selfgym.models import load_tokenizer

                self._tokenizer = load_tokenizer(self.config.tokenizer)
            text = self._tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return sum(len(str(m["content"])) // 4 + 4 for m in chat) + 2

    def generate(self, prompts: Sequence[Sequence[ChatMessage]], params: SamplingParams) -> list[Completion]:
        """One completion per prompt; the requests run concurrently. Raises ``PolicyError`` if any fails."""
        model = self.model
        # A fixed seed is spread over the batch (seed + i): the same seed on identical prompts (a
        # group of attempts) would make the server return identical samples.
        seeded = [params if params.seed is None else dataclasses.replace(params, seed=params.seed + i)
                  for i in range(len(prompts))]
        futures = [self._pool.submit(self._one, model, [to_chat(m) for m in p], s)
                   for p, s in zip(prompts, seeded, strict=True)]
        out = [f.result() for f in futures]
        self.tokens_generated += sum(len(c.completion_ids) for c in out)
        return out

    def _request(self, model: str, messages: list[dict[str, Any]], params: SamplingParams) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.config.token_ids:
            extra = {"return_token_ids": True, "return_tokens_as_token_ids": True}
        if params.top_k:
            extra["top_k"] = params.top_k
        request: dict[str, Any] = {
            "model": model, "messages": messages, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "logprobs": params.logprobs,
        }
        if params.stop:
            request["stop"] = list(params.stop)
        if params.seed is not None:
            request["seed"] = params.seed
        if extra:
            request["extra_body"] = extra
        return request

    def _one(self, model: str, messages: list[dict[str, Any]], params: SamplingParams) -> Completion:
        import openai

        start = time.perf_counter()
        try:
            response = self.client.chat.completions.create(**self._request(model, messages, params))
        except openai.OpenAIError as exc:
            raise PolicyError(f"{self.config.base_url}: {type(exc).__name__}: {exc}") from exc
        latency = time.perf_counter() - start
        if not response.choices:
            raise PolicyError(f"{self.config.base_url} answered with no choices")
        choice = response.choices[0]
        extra_choice = choice.model_extra or {}
        entries = (choice.logprobs.content or []) if choice.logprobs else []
        ids = extra_choice.get("token_ids")
        if ids is None and entries:
            parsed = [_token_id(e.token) for e in entries]
            ids = None if any(i is None for i in parsed) else parsed
        logprobs = [float(e.logprob) for e in entries] if entries else None
        if ids is None:
            ids, logprobs = [], None  # without ids, log-probabilities cannot be aligned to tokens
        elif logprobs is not None and len(logprobs) != len(ids):
            logprobs = None
        prompt_ids = (response.model_extra or {}).get("prompt_token_ids") or []
        details = getattr(response.usage, "prompt_tokens_details", None) if response.usage else None
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        return Completion(text=choice.message.content or "", prompt_ids=list(prompt_ids), completion_ids=list(ids),
                          logprobs=logprobs, finish_reason=choice.finish_reason or "stop", latency_s=latency,
                          cached_tokens=cached)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
