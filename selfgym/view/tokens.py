"""Per-token log-probabilities as a heat map, decoded with the run's tokenizer when that is cheap.

Cheap means a ``tokenizer.json`` in the run's model directory, read with the ``tokenizers`` library
(milliseconds, no ``transformers`` import); otherwise (the embedded GGUF model, a model id) the
heat map shows token ids.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

__all__ = ["heat_tokens", "tokenizer_for"]


@functools.lru_cache(maxsize=8)
def tokenizer_for(model: str) -> Any | None:
    """A ``tokenizers.Tokenizer`` from ``<model>/tokenizer.json``, or None when there is none."""
    try:
        path = Path(model) / "tokenizer.json"
        if not path.is_file():
            return None
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    except Exception:  # an unreadable tokenizer only costs the decoded text: the ids are shown instead
        return None


def heat_tokens(ids: list[int], logprobs: list[float] | None, tokenizer: Any | None) -> list[dict[str, Any]]:
    """One cell per completion token: text (or id), log-prob, probability and a colour."""
    cells = []
    for i, token_id in enumerate(ids):
        lp = logprobs[i] if logprobs is not None and i < len(logprobs) else None
        text = tokenizer.decode([token_id], skip_special_tokens=False) if tokenizer is not None else f"[{token_id}]"
        p = math.exp(lp) if lp is not None else None
        hue = 0 if p is None else round(120 * p)  # red (unlikely) to green (certain)
        colour = "#eee" if p is None else f"hsl({hue}, 75%, 82%)"
        cells.append({"id": token_id, "text": text, "logprob": lp, "p": p, "colour": colour})
    return cells
