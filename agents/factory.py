"""Building policies from a spec string (``make_policy``); the contract is ``policy.py``."""

from __future__ import annotations

import threading
from typing import Any

from .policy import Policy

__all__ = ["make_policy"]

_CACHE: dict[str, Policy] = {}
_CACHE_LOCK = threading.Lock()


def make_policy(spec: str = "embedded", *, cached: bool = True, **config: Any) -> Policy:
    """Build a policy from a spec string.

    - ``"embedded"``, a checkpoint or LoRA adapter dir, a ``.gguf`` file: ``TransformersPolicy``;
    - ``"openai:<base_url>"`` or ``"openai:<base_url>#<model>"``: ``OpenAIPolicy`` (any
      OpenAI-compatible server: ``vllm serve``, ``selfgym serve``, SGLang, llama.cpp).

    With ``cached`` (default) one process loads each spec once and shares it.
    """
    key = f"{spec}|{sorted(config.items())}"
    with _CACHE_LOCK:
        if cached and key in _CACHE:
            return _CACHE[key]
        if spec.startswith("openai:"):
            from .openai_policy import OpenAIConfig, OpenAIPolicy

            base_url, _, model = spec.removeprefix("openai:").partition("#")
            policy: Policy = OpenAIPolicy(OpenAIConfig(base_url=base_url, model=model or None, **config))
        else:
            from .hf import TransformersConfig, TransformersPolicy

            policy = TransformersPolicy.load(TransformersConfig(model=spec, **config))
        if cached:
            _CACHE[key] = policy
        return policy
