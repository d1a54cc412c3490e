"""A local model's dtype is a policy option: bfloat16 weights and keys/values on a CPU, from a spec string."""

from __future__ import annotations

import pytest
import torch

from selfgym.agents import make_agent
from selfgym.agents.hf import TransformersConfig
from selfgym.agents.policy import SamplingParams
from selfgym.errors import ConfigError
from selfgym.models import tiny_model_dir


def test_a_spec_can_load_the_model_in_bfloat16_and_it_still_generates_token_exact_turns() -> None:
    agent = make_agent(f"llm:{tiny_model_dir()}?dtype=bfloat16&max_tokens=6")
    assert agent.policy.model.dtype == torch.bfloat16
    assert agent.config.sampling.max_tokens == 6
    [out] = agent.policy.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=6, temperature=0))
    assert out.completion_ids and len(out.logprobs) == len(out.completion_ids)
    assert all(isinstance(p, float) and p <= 0 for p in out.logprobs)
    default = make_agent(f"llm:{tiny_model_dir()}")
    assert default.policy.model.dtype == torch.float32  # a CPU keeps float32 unless told


def test_bad_dtypes_and_policy_options_for_a_server_are_refused() -> None:
    with pytest.raises(ConfigError, match="dtype must be float32, bfloat16 or float16"):
        TransformersConfig(dtype="int4")
    with pytest.raises(ConfigError, match="dtype set a local model"):
        make_agent("llm:openai:http://127.0.0.1:9/v1?dtype=bfloat16")
    with pytest.raises(ConfigError, match="unknown llm agent option 'dtyp'"):
        make_agent("llm:embedded?dtyp=bfloat16")


def test_a_copy_in_another_dtype_merges_lora_and_leaves_the_trained_weights_alone() -> None:
    """What an evaluation in bfloat16 generates with: the trained LoRA's effect is in the copy (a
    float32 copy gives the same logits), and the policy still trains float32 weights with its adapter."""
    from peft import LoraConfig, get_peft_model

    from selfgym.agents.hf import TransformersPolicy

    agent = make_agent(f"llm:{tiny_model_dir()}")
    torch.manual_seed(0)
    peft = get_peft_model(agent.policy.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                         init_lora_weights=False))  # a non-zero update
    policy = TransformersPolicy(peft, agent.policy.tokenizer, agent.policy.config)
    before = {k: v.clone() for k, v in peft.state_dict().items()}
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        want = peft(input_ids=ids).logits
        same = policy.copy_in("float32")
        assert not hasattr(same.model, "peft_config")  # a plain model
        assert torch.allclose(same.model(input_ids=ids).logits, want, atol=1e-4)
        half = policy.copy_in("bfloat16")
        assert half.model.dtype == torch.bfloat16 and half.config.dtype == "bfloat16"
        assert (half.model(input_ids=ids).logits.float() - want).abs().max() < 0.1 * want.abs().max()
    after = peft.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert all(p.dtype == torch.float32 for p in peft.parameters())
    [out] = half.generate([[{"role": "user", "content": "hi"}]], SamplingParams(max_tokens=4, temperature=0))
    assert out.completion_ids
    with pytest.raises(ConfigError, match="dtype must be"):
        policy.copy_in("int8")
