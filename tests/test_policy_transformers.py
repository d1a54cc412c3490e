"""The transformers backend: token-exact batched generation on a tiny real model (and the real GGUF once)."""

from __future__ import annotations

import pytest
import torch

from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.policy import SamplingParams, make_policy
from selfgym.agents.testing import tiny_policy
from selfgym.errors import ConfigError

CHATS = [
    [{"role": "user", "content": "Guess a number between 1 and 8."}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "Write a long sentence about the sea, the wind and the ships that sail on it."}],
    [{"role": "user", "content": "hi"}],
]


def rescore(policy: TransformersPolicy, prompt_ids: list[int], completion_ids: list[int],
            temperature: float) -> torch.Tensor:
    """Log-probabilities of the completion under the model, recomputed the way a trainer does."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = policy.model(ids).logits[0].float()
    logp = torch.log_softmax(logits / (temperature or 1.0), dim=-1)
    n = len(prompt_ids)
    return logp[n - 1:-1].gather(1, torch.tensor(completion_ids)[:, None]).squeeze(1)


def check_token_exact(policy: TransformersPolicy, chats: list, params: SamplingParams) -> list:
    outs = policy.generate(chats, params)
    assert len(outs) == len(chats)
    for chat, out in zip(chats, outs, strict=True):
        assert out.prompt_ids == policy.encode(chat)  # exactly what the model was fed, no padding
        assert 1 <= len(out.completion_ids) <= params.max_tokens
        decoded = policy.tokenizer.decode(out.completion_ids, skip_special_tokens=True)
        assert decoded.startswith(out.text)
        if not params.stop:
            assert decoded == out.text
        assert out.logprobs is not None and len(out.logprobs) == len(out.completion_ids)
        expected = rescore(policy, out.prompt_ids, out.completion_ids, params.temperature)
        assert torch.allclose(expected, torch.tensor(out.logprobs), atol=1e-3)
        assert out.finish_reason in ("stop", "length")
    return outs


@pytest.mark.parametrize("params", [
    SamplingParams(max_tokens=12, temperature=0),
    SamplingParams(max_tokens=12, temperature=0.8, top_p=0.9, top_k=20, seed=3),
])
def test_batched_generation_is_token_exact(params: SamplingParams) -> None:
    check_token_exact(tiny_policy(), CHATS, params)


def test_seeded_sampling_repeats_and_differs_across_seeds() -> None:
    policy = tiny_policy()
    chats = [CHATS[0]] * 3
    first = policy.generate(chats, SamplingParams(max_tokens=10, temperature=1.0, seed=7))
    again = policy.generate(chats, SamplingParams(max_tokens=10, temperature=1.0, seed=7))
    other = policy.generate(chats, SamplingParams(max_tokens=10, temperature=1.0, seed=8))
    assert [c.completion_ids for c in first] == [c.completion_ids for c in again]
    assert [c.completion_ids for c in first] != [c.completion_ids for c in other]
    assert len({tuple(c.completion_ids) for c in first}) > 1  # rows of one batch are different samples


def test_rows_are_cut_at_eos_and_at_stop_strings() -> None:
    policy = tiny_policy()
    tok = policy.tokenizer
    eos = tok.eos_token_id
    words = tok("Hello world. Bye now", add_special_tokens=False)["input_ids"]
    greedy = SamplingParams(max_tokens=64, temperature=0)
    ended = policy._completion([1, 2], words + [eos, eos, eos], [-0.5] * (len(words) + 3), greedy, 0.1)
    assert ended.completion_ids == words + [eos] and ended.finish_reason == "stop"
    assert ended.text == "Hello world. Bye now" and ended.logprobs == [-0.5] * (len(words) + 1)
    full = policy._completion([1], words, None, greedy, 0.1)
    assert full.finish_reason == "length" and full.completion_ids == words and full.logprobs is None
    stop = SamplingParams(max_tokens=64, temperature=0, stop=(" world", "zzz"))
    cut = policy._completion([1], words + [eos], [0.0] * (len(words) + 1), stop, 0.1)
    assert cut.text == "Hello" and cut.finish_reason == "stop"
    # the fewest tokens that contain the stop string: generation stopped there
    assert " world" in tok.decode(cut.completion_ids) and " world" not in tok.decode(cut.completion_ids[:-1])
    assert len(cut.logprobs) == len(cut.completion_ids)


def test_stop_strings_end_generation() -> None:
    policy = tiny_policy()
    free = policy.generate(CHATS[:1], SamplingParams(max_tokens=16, temperature=0))[0]
    text = policy.tokenizer.decode(free.completion_ids[:4], skip_special_tokens=True)
    stop = text[-1] if text.strip() == "" else text.split()[-1]  # something greedy decoding will produce
    outs = check_token_exact(policy, CHATS[:1], SamplingParams(max_tokens=16, temperature=0, stop=(stop,)))
    assert outs[0].finish_reason == "stop" and stop not in outs[0].text
    assert len(outs[0].completion_ids) <= 4


def test_continuous_batching_path_on_cpu() -> None:
    policy = tiny_policy()
    continuous = TransformersPolicy(policy.model, policy.tokenizer, TransformersConfig(
        model="tiny", batching="continuous", max_context=512, max_batch_size=8))
    assert continuous.path == "continuous" and policy.path == "generate"  # auto picks generate on CPU
    for params in (SamplingParams(max_tokens=8, temperature=0), SamplingParams(max_tokens=8, temperature=1.0)):
        outs = continuous.generate(CHATS, params)  # the second call rebuilds the manager for sampling
        for chat, out in zip(CHATS, outs, strict=True):
            assert out.prompt_ids == policy.encode(chat)
            assert policy.tokenizer.decode(out.completion_ids, skip_special_tokens=True) == out.text
            assert len(out.logprobs) == len(out.completion_ids)
            expected = rescore(policy, out.prompt_ids, out.completion_ids, params.temperature)
            assert torch.allclose(expected, torch.tensor(out.logprobs), atol=1e-3)
    greedy = policy.generate(CHATS, SamplingParams(max_tokens=8, temperature=0))
    assert [c.completion_ids for c in continuous.generate(CHATS, SamplingParams(max_tokens=8, temperature=0))] == [
        c.completion_ids for c in greedy]  # both paths decode greedily to the same tokens


def test_bad_requests_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ConfigError, match="top_p"):
        SamplingParams(top_p=0)
    with pytest.raises(ConfigError, match="max_tokens"):
        SamplingParams(max_tokens=0)
    assert SamplingParams(stop="\n").stop == ("\n",)
    with pytest.raises(ConfigError, match="batching"):
        TransformersConfig(batching="paged")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no such directory"):
        make_policy("/nonexistent/checkpoint", cached=False)
    assert tiny_policy().generate([], SamplingParams()) == []


@pytest.mark.slow
def test_embedded_smollm2_generates_token_exact_text() -> None:
    """The real model: loads from the GGUF package (cached), batches with left padding, obeys stop strings."""
    policy = make_policy("embedded", device="cpu")
    assert policy.name == "embedded"
    params = SamplingParams(max_tokens=20, temperature=0)
    batch = check_token_exact(policy, CHATS, params)
    alone = policy.generate([CHATS[2]], params)[0]
    assert alone.completion_ids == batch[2].completion_ids  # left padding does not change the answer
    assert any(c.text.strip() for c in batch)  # a real model says something
    stopped = policy.generate([CHATS[1]], SamplingParams(max_tokens=20, temperature=0, stop=(" ",)))[0]
    assert " " not in stopped.text and stopped.finish_reason == "stop"
    assert len(stopped.completion_ids) < len(batch[1].completion_ids)
