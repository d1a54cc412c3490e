"""Checkpoints: a LoRA adapter dir (or a full model dir) plus ``selfgym_checkpoint.json``.

A LoRA checkpoint is what ``peft``'s ``save_pretrained`` writes (``adapter_config.json``,
``adapter_model.safetensors``); a full checkpoint is a Hugging Face model dir. Either way the
metadata file names the algorithm, the base model the adapter applies to, the run, the
iteration and the parent checkpoint, and the checkpoint is registered in the run's store.

Backends load them with ``load_checkpoint`` (transformers); for vLLM either serve the adapter
(``vllm serve BASE --enable-lora --lora-modules NAME=DIR``) or serve ``merge_checkpoint``'s output.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from peft import PeftModel

from selfgym.errors import ConfigError
from selfgym.models import load_model
from selfgym.store import Store
from selfgym.types import new_id

__all__ = [
    "CHECKPOINT_META",
    "CheckpointInfo",
    "load_base_model",
    "load_checkpoint",
    "merge_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_META = "selfgym_checkpoint.json"


@dataclass(frozen=True, kw_only=True)
class CheckpointInfo:
    """What ``selfgym_checkpoint.json`` holds."""

    id: str
    path: str
    algorithm: str
    kind: Literal["lora", "full"]
    base_model: str
    run_id: str = ""
    iteration: int = 0
    parent_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)  # DistributedDataParallel keeps the model in .module


def save_checkpoint(
    model: Any,
    directory: str | Path,
    *,
    algorithm: str,
    base_model: str,
    run_id: str = "",
    iteration: int = 0,
    parent_id: str | None = None,
    metrics: dict[str, float] | None = None,
    config: dict[str, Any] | None = None,
    tokenizer: Any | None = None,
    store: Store | None = None,
    checkpoint_id: str | None = None,
) -> CheckpointInfo:
    """Save ``model`` (adapter only when it is a ``PeftModel``) and its metadata; register it in ``store``.

    Args:
        directory: the checkpoint dir (created; an existing checkpoint there is an error).
        base_model: the spec the adapter applies to (``embedded``, a model dir, a hub id).
        tokenizer: saved alongside, so a full checkpoint dir loads on its own.
    """
    directory = Path(directory)
    if (directory / CHECKPOINT_META).exists():
        raise ConfigError(f"{directory} already holds a checkpoint; checkpoints are never overwritten")
    directory.mkdir(parents=True, exist_ok=True)
    model = _unwrap(model)
    kind: Literal["lora", "full"] = "lora" if isinstance(model, PeftModel) else "full"
    if kind == "lora":  # loaders (peft, selfgym.models) find the base through this field
        for adapter in model.peft_config.values():
            adapter.base_model_name_or_path = base_model
    if kind == "lora":  # without target embeddings there is nothing to save (and no hub lookup for them)
        tuned_embeddings = any("embed" in str(a.target_modules) for a in model.peft_config.values())
        model.save_pretrained(directory, save_embedding_layers=tuned_embeddings)
    else:
        model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    info = CheckpointInfo(
        id=checkpoint_id or new_id("ckpt-"), path=str(directory.resolve()), algorithm=algorithm, kind=kind,
        base_model=base_model, run_id=run_id, iteration=iteration, parent_id=parent_id,
        metrics={k: float(v) for k, v in (metrics or {}).items()}, config=config or {},
    )
    (directory / CHECKPOINT_META).write_text(json.dumps(info.to_dict(), indent=2), encoding="utf-8")
    if store is not None:
        store.add_checkpoint(info.id, run_id=run_id, iteration=iteration, path=info.path, parent_id=parent_id,
                             algorithm=algorithm, kind=kind, base_model=base_model, metrics=info.metrics)
    return info


def read_checkpoint(path: str | Path) -> CheckpointInfo:
    """The metadata of the checkpoint in ``path``."""
    meta = Path(path) / CHECKPOINT_META
    if not meta.is_file():
        raise ConfigError(f"{path} is not a selfgym checkpoint (no {CHECKPOINT_META})")
    return CheckpointInfo(**json.loads(meta.read_text(encoding="utf-8")))


def load_base_model(spec: str) -> Any:
    """The base model named by ``spec``: a local Hugging Face model dir as it is (it may have no
    tokenizer), any other spec (``embedded``, a GGUF file) as ``selfgym.models`` loads a policy's."""
    if (Path(spec) / "config.json").is_file():
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(spec)
    return load_model(spec)[0]


def load_checkpoint(path: str | Path, *, base: Any | None = None, trainable: bool = False) -> Any:
    """Load a checkpoint as a transformers model (LoRA checkpoints as a ``PeftModel`` on their base).

    Args:
        base: the base model to put the adapter on; loaded from the metadata's ``base_model`` if None.
        trainable: keep the adapter trainable (to continue training it).
    """
    info = read_checkpoint(path)
    if info.kind == "full":
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path)
    base = load_base_model(info.base_model) if base is None else base
    return PeftModel.from_pretrained(base, str(path), is_trainable=trainable)


def merge_checkpoint(path: str | Path, out_dir: str | Path, *, base: Any | None = None,
                     tokenizer: Any | None = None, store: Store | None = None) -> CheckpointInfo:
    """Fold a LoRA checkpoint into its base weights and save a full model dir (for servers without LoRA)."""
    info = read_checkpoint(path)
    if info.kind != "lora":
        raise ConfigError(f"{path} is a full checkpoint already; serve it as it is")
    merged = load_checkpoint(path, base=base).merge_and_unload()
    return save_checkpoint(merged, out_dir, algorithm=info.algorithm, base_model=info.base_model,
                           run_id=info.run_id, iteration=info.iteration, parent_id=info.id, metrics=info.metrics,
                           config={**info.config, "merged_from": info.id}, tokenizer=tokenizer, store=store)
