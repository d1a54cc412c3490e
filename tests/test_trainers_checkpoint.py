"""Checkpoints: adapter or full model dirs with metadata, registered in the store, loadable as trained."""

from __future__ import annotations

import json

import pytest
import torch

from selfgym.agents.models import load_model
from selfgym.errors import ConfigError
from selfgym.store import Store
from selfgym.trainers import (
    CHECKPOINT_META,
    GRPOConfig,
    GRPOTrainer,
    LoraSettings,
    TrainConfig,
    load_checkpoint,
    merge_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from selfgym.trainers.tiny import single_thread, tiny_causal_lm, tiny_tokenizer, upper_half_rollouts

PROMPT = torch.tensor([[2, 3, 4, 5, 6]])


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    with single_thread():
        yield


def trained(lora: LoraSettings | None):
    torch.manual_seed(0)
    model = tiny_causal_lm(seed=0)
    trainer = GRPOTrainer(model, GRPOConfig(train=TrainConfig(learning_rate=5e-2, batch_size=32,
                                                              micro_batch_size=32, lora=lora)))
    result = trainer.train(upper_half_rollouts(model, [[2, 3 + i] for i in range(4)], attempts=8))
    assert result.steps == 1
    return trainer.model


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROMPT).logits


def test_lora_checkpoint_round_trip_and_registration(tmp_path):
    base_dir = tmp_path / "base"
    tiny_causal_lm(seed=0).save_pretrained(base_dir)
    model = trained(LoraSettings(r=4, alpha=8))
    assert not torch.allclose(logits(model), logits(tiny_causal_lm(seed=0)))  # the adapter changed something
    store = Store(tmp_path / "run")
    info = save_checkpoint(model, tmp_path / "run" / "checkpoints" / "c1", algorithm="grpo", base_model=str(base_dir),
                           run_id="r", iteration=3, parent_id="ckpt-0", metrics={"losses/loss": 0.5},
                           tokenizer=tiny_tokenizer(), store=store)
    directory = tmp_path / "run" / "checkpoints" / "c1"
    assert {"adapter_config.json", "adapter_model.safetensors", CHECKPOINT_META} <= {p.name for p in directory.iterdir()}
    meta = json.loads((directory / CHECKPOINT_META).read_text())
    assert meta["kind"] == "lora" and meta["iteration"] == 3 and meta["parent_id"] == "ckpt-0"
    assert read_checkpoint(directory) == info
    (row,) = store.checkpoints("r")
    assert row["id"] == info.id and row["path"] == str(directory.resolve()) and row["metrics"] == {"losses/loss": 0.5}

    reloaded = load_checkpoint(directory)  # base found through the metadata
    assert torch.allclose(logits(reloaded), logits(model), atol=1e-6)
    continued = load_checkpoint(directory, base=tiny_causal_lm(seed=0), trainable=True)
    assert any(p.requires_grad for p in continued.parameters())

    merged = merge_checkpoint(directory, tmp_path / "merged", store=store)
    assert merged.kind == "full" and merged.parent_id == info.id
    assert torch.allclose(logits(load_checkpoint(tmp_path / "merged")), logits(model), atol=1e-5)
    assert len(store.checkpoints("r")) == 2
    with pytest.raises(ConfigError, match="never overwritten"):
        save_checkpoint(model, directory, algorithm="grpo", base_model=str(base_dir))
    store.close()


def test_the_policy_backends_loader_reads_a_lora_checkpoint(tmp_path):
    base_dir = tmp_path / "base"
    tiny_causal_lm(seed=0).save_pretrained(base_dir)
    tiny_tokenizer().save_pretrained(base_dir)
    model = trained(LoraSettings(r=4, alpha=8))
    save_checkpoint(model, tmp_path / "ckpt", algorithm="grpo", base_model=str(base_dir), tokenizer=tiny_tokenizer())
    loaded, tokenizer = load_model(tmp_path / "ckpt", device="cpu")
    assert tokenizer.convert_tokens_to_ids("t5") == 5
    assert torch.allclose(logits(loaded), logits(model), atol=1e-5)


def test_full_checkpoint_loads_on_its_own(tmp_path):
    model = trained(None)
    info = save_checkpoint(model, tmp_path / "full", algorithm="grpo", base_model="tiny", tokenizer=tiny_tokenizer())
    assert info.kind == "full" and (tmp_path / "full" / "config.json").is_file()
    assert torch.allclose(logits(load_checkpoint(tmp_path / "full")), logits(model), atol=1e-6)
    with pytest.raises(ConfigError, match="full checkpoint already"):
        merge_checkpoint(tmp_path / "full", tmp_path / "again")


def test_a_dir_without_metadata_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="not a selfgym checkpoint"):
        read_checkpoint(tmp_path)
