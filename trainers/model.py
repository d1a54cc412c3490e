"""The policy being trained: LoRA wrapping, device and precision, per-token log-probabilities.

Log-probabilities go through TRL's fused LM head (``trl.trainer.utils.add_fused_lm_head``): the
forward scores only the labelled (agent) positions and never builds the ``[batch, length,
vocab]`` logits on a GPU, the same kernel TRL's own trainers use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from accelerate import Accelerator
from peft import LoraConfig, PeftModel, get_peft_model
from trl.trainer.utils import add_fused_lm_head

from selfgym.errors import ConfigError

from .config import LoraSettings, Precision, TrainConfig
from .data import Batch

__all__ = [
    "activation_checkpointing",
    "check_vocabulary",
    "make_accelerator",
    "pad_token_id",
    "prepare_policy",
    "reference_logprobs",
    "token_logprobs",
    "trl_arguments",
    "use_bf16",
]

_FUSED_FLAG = "_selfgym_fused_head"


def use_bf16(precision: Precision) -> bool:
    """Whether training runs in bf16: asked for, or ``auto`` on a CUDA GPU that supports it."""
    if precision == "bf16":
        return True
    return precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def trl_arguments(train: TrainConfig, output_dir: str) -> dict[str, Any]:
    """The ``TrainingArguments`` every TRL trainer here shares: our optimisation settings, no saving,
    no reporting, no progress bars, CPU when there is no CUDA."""
    return dict(
        output_dir=output_dir, num_train_epochs=train.epochs, learning_rate=train.learning_rate,
        per_device_train_batch_size=train.micro_batch_size, gradient_accumulation_steps=train.accumulation_steps,
        lr_scheduler_type="constant", max_grad_norm=train.max_grad_norm, weight_decay=train.weight_decay,
        seed=train.seed, gradient_checkpointing=train.activation_checkpointing, logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, bf16=use_bf16(train.precision),
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0,
    )


def make_accelerator(precision: Precision) -> Accelerator:
    """An ``Accelerator`` on the GPU when CUDA is there (one or, under ``accelerate launch``, many), else the CPU.

    Gradient accumulation is done by the trainers themselves (the loss is normalised by the agent
    tokens of the whole optimizer batch), so the accelerator only places, wraps and autocasts.
    """
    from accelerate.state import AcceleratorState

    mixed_precision = "bf16" if use_bf16(precision) else "no"
    shared = AcceleratorState._shared_state  # process-wide: another trainer (TRL's) may have set it
    if shared and shared.get("_mixed_precision") != mixed_precision and not torch.distributed.is_initialized():
        AcceleratorState._reset_state()  # one process, no process group: safe to set up again
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)


def _base(model: Any) -> Any:
    return model.get_base_model() if isinstance(model, PeftModel) else model


def prepare_policy(model: Any, lora: LoraSettings | None, *, temperature: float = 1.0) -> Any:
    """Make ``model`` trainable the way the config says and give it the fused LM head.

    A plain model is wrapped in a new LoRA adapter (or, with ``lora=None``, trained in full); a
    ``PeftModel`` (e.g. an adapter from an earlier iteration) keeps its adapter, made trainable.

    Args:
        temperature: log-probabilities are those of ``softmax(logits / temperature)``, the
            distribution the rollouts were sampled from.
    """
    base = _base(model)
    if getattr(base, _FUSED_FLAG, None) != temperature:
        add_fused_lm_head(base, temperature=temperature)  # the newest head wraps (and overrides) older ones
        setattr(base, _FUSED_FLAG, temperature)
    if isinstance(model, PeftModel):
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.requires_grad_(True)
        return model
    if lora is None:
        model.requires_grad_(True)
        return model
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="CAUSAL_LM",
                        target_modules=lora.target_modules if isinstance(lora.target_modules, str)
                        else list(lora.target_modules))
    return get_peft_model(model, config)


@contextlib.contextmanager
def activation_checkpointing(model: Any, enabled: bool) -> Iterator[None]:
    """Recompute activations in the backward pass inside the block (when ``enabled``), and make sure
    it is off afterwards: TRL's trainers switch it on by default, and a model left that way
    generates without its KV cache."""
    base = _base(model)
    if enabled and getattr(base, "supports_gradient_checkpointing", False):
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        if getattr(base, "is_activation_checkpointing", False):
            base.activation_checkpointing_disable()


def pad_token_id(model: Any) -> int:
    """The id used for padding: the model's pad token, else its EOS token, else 0 (it is never attended)."""
    config = _base(model).config.get_text_config()
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(config, name, None)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    return 0


def check_vocabulary(model: Any, sequences: Iterable[Sequence[int]]) -> None:
    """Fail clearly when token ids do not fit the model (trajectories from another tokenizer)."""
    size = _base(model).get_input_embeddings().num_embeddings
    low, top = 0, -1
    for ids in sequences:
        if ids:
            low, top = min(low, min(ids)), max(top, max(ids))
    if top >= size or low < 0:
        raise ConfigError(
            f"trajectory token ids span [{low}, {top}] but the model's vocabulary has {size} entries: the "
            "trajectories were produced with another tokenizer; train the model that produced them")


def token_logprobs(model: Any, batch: Batch) -> torch.Tensor:
    """``[rows, length - 1]``: log-probability of token ``t + 1`` given tokens ``<= t``; 0 off the agent mask."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels,
                fused_lm_head=True, use_cache=False)
    logprobs = out.log_probs
    # prompt-learning adapters prepend virtual tokens; keep the positions of the real ones
    return logprobs[:, -(batch.input_ids.shape[1] - 1):]


@contextlib.contextmanager
def _reference_mode(model: Any) -> Iterator[None]:
    if isinstance(model, PeftModel):
        with model.disable_adapter():
            yield
    else:
        yield


def reference_logprobs(model: Any, batch: Batch, reference: Any | None = None) -> torch.Tensor:
    """Log-probabilities under the reference policy: ``reference`` if given, else ``model`` with its adapter off."""
    if reference is None and not isinstance(model, PeftModel):
        raise ConfigError("a KL penalty on a full fine-tune needs a reference model; pass reference=... or use LoRA")
    with torch.no_grad():
        if reference is not None:
            return token_logprobs(reference, batch)
        with _reference_mode(model):
            return token_logprobs(model, batch)
