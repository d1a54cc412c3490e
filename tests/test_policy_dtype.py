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
