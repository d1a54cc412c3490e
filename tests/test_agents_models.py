"""Model loading: the tiny test model, checkpoints, LoRA adapters, and the vLLM command for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from selfgym.agents.models import embedded_gguf_path, load_model, make_tiny_model, tiny_model_dir
from selfgym.agents.policy import SamplingParams, make_policy
from selfgym.agents.testing import make_tiny_adapter
from selfgym.agents.vllm import start_vllm, vllm_command
from selfgym.errors import ConfigError


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = make_tiny_adapter(tmp_path_factory.mktemp("adapter"))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir())
    return out


def test_tiny_model_is_built_once_and_reused(tmp_path: Path) -> None:
    target = tmp_path / "tiny"
    assert make_tiny_model(target, hidden_size=32, num_layers=1) == target
    files = {p.name for p in target.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    make_tiny_model(target, hidden_size=32, num_layers=1)
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp
    model, tokenizer = load_model(target, device="cpu")
    assert model.config.hidden_size == 32 and model.config.vocab_size == len(tokenizer)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="not empty"):
        make_tiny_model(busy)


def test_unloadable_specs_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a checkpoint"):
        load_model(tmp_path)
    with pytest.raises(ConfigError, match="no such directory"):
        load_model(tmp_path / "nothing-here")
    with pytest.raises(ConfigError, match="no GGUF file"):
        load_model(tmp_path / "model.gguf")
    assert embedded_gguf_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf" and embedded_gguf_path().is_file()


def test_lora_adapter_loads_on_its_base(adapter_dir: Path) -> None:
    from peft import PeftModel

    model, tokenizer = load_model(adapter_dir, device="cpu")
    base, _ = load_model(tiny_model_dir(), device="cpu")
    assert isinstance(model, PeftModel)
    ids = tokenizer("hello there", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, base(ids).logits)  # the adapter is applied
        merged, _ = load_model(adapter_dir, device="cpu", merge_adapter=True)
        assert torch.allclose(merged(ids).logits, model(ids).logits, atol=1e-4)
    policy = make_policy(str(adapter_dir), cached=False, device="cpu")
    out = policy.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=4, temperature=0))[0]
    assert out.prompt_ids and len(out.completion_ids) == len(out.logprobs) >= 1


def test_vllm_command_for_checkpoints_and_adapters(adapter_dir: Path, tmp_path: Path) -> None:
    checkpoint = tiny_model_dir()
    argv = vllm_command(checkpoint, port=8123)
    assert argv[:3] == ["vllm", "serve", str(checkpoint.resolve())]
    assert argv[argv.index("--port") + 1] == "8123" and argv[argv.index("--served-model-name") + 1] == "policy"
    lora = vllm_command(adapter_dir, served_name="iter-3")
    assert lora[2] == str(checkpoint.resolve()) and "--enable-lora" in lora
    assert lora[lora.index("--lora-modules") + 1] == f"iter-3={adapter_dir.resolve()}"
    assert lora[lora.index("--max-lora-rank") + 1] == "8"  # rank 4, vLLM's smallest allowed is 8
    if shutil.which("vllm") is None:
        with pytest.raises(ConfigError, match="vllm is not installed.*vllm serve"):
            start_vllm(checkpoint)
