"""KV-cache reuse across turns (``agents/kvcache.py``): the same turns as without reuse, fewer prefilled tokens.

The tiny model checks the mechanics (rows joining and leaving a batch, sampling, a trimmed history,
the LRU bound, the server); the embedded model checks exactness turn by turn on a real dialogue.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from typing import Any

import numpy as np
import pytest
import torch

from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.kvcache import CacheEntry, PrefixCache, common_prefix
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.policy import GenerationStats, MeteredPolicy, SamplingParams, make_policy
from selfgym.agents.server import start_server
from selfgym.agents.testing import tiny_policy
from selfgym.errors import ConfigError


def pair(policy: TransformersPolicy, **config: Any) -> tuple[TransformersPolicy, TransformersPolicy]:
    """Two fresh policies over ``policy``'s weights: reuse off, and reuse on."""
    off = TransformersPolicy(policy.model, policy.tokenizer, dataclasses.replace(policy.config, prefix_cache_mb=0))
    on = TransformersPolicy(policy.model, policy.tokenizer, dataclasses.replace(policy.config, **config))
    return off, on


def assert_same(a: list, b: list, atol: float) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.prompt_ids == y.prompt_ids
        assert x.completion_ids == y.completion_ids
        assert x.logprobs is not None and y.logprobs is not None
        assert np.allclose(x.logprobs, y.logprobs, atol=atol), max(abs(p - q) for p, q in zip(
            x.logprobs, y.logprobs, strict=True))


def entry(ids: list[int], heads: int = 1) -> CacheEntry:
    kv = [(torch.zeros(heads, len(ids), 4), torch.zeros(heads, len(ids), 4))]
    return CacheEntry(ids=np.asarray(ids, dtype=np.int64), prompt_len=len(ids), kv=kv)


def test_prefix_cache_matches_the_longest_prefix_and_stays_within_its_bound() -> None:
    assert common_prefix(np.array([1, 2, 3]), np.array([1, 2, 4, 5])) == 2
    assert common_prefix(np.array([1, 2]), np.array([1, 2, 3])) == 2
    per_token = entry([0]).nbytes
    cache = PrefixCache(max_bytes=10 * per_token)
    short, long, other = entry([1, 2, 3]), entry([1, 2, 3, 4, 9]), entry([7, 8])
    cache.add(short)
    cache.add(other)
    assert cache.match(np.array([1, 2, 3, 4, 5])) == (short, 3)
    cache.add(long)  # extends `short`, which is dropped
    assert len(cache) == 2 and cache.tokens == 7
    assert cache.match(np.array([1, 2, 3, 4, 5])) == (long, 4)
    assert cache.match(np.array([5, 5])) == (None, 0)
    cache.add(entry([4, 4, 4, 4]))  # 11 tokens > 10: the least recently used (`other`) goes
    assert cache.match(np.array([7, 8])) == (None, 0) and cache.nbytes <= cache.max_bytes
    cache.add(entry(list(range(20, 40))))  # larger than the whole bound: not kept
    assert cache.tokens == 9


def test_batched_turns_with_rows_joining_and_leaving_are_unchanged_by_reuse() -> None:
    off, on = pair(tiny_policy())
    system = {"role": "system", "content": "You share this system prompt. " * 4}
    chats = [[system, {"role": "user", "content": f"Task {i}: " + "go " * (3 * i + 1)}] for i in range(4)]
    live = [0, 1]
    for turn, params in enumerate([SamplingParams(max_tokens=10, temperature=0, logprobs=True),
                                   SamplingParams(max_tokens=10, temperature=0.9, top_k=30, seed=5),
                                   SamplingParams(max_tokens=10, temperature=0, logprobs=True),
                                   SamplingParams(max_tokens=10, temperature=1.0, seed=11)]):
        batch = [chats[i] for i in live]
        base, reused = off.generate(batch, params), on.generate(batch, params)
        assert_same(base, reused, atol=1e-4)
        for i, out in zip(live, base, strict=True):
            chats[i] += [{"role": "assistant", "content": out.text}, {"role": "user", "content": f"obs {turn}"}]
        live = {0: [0, 1, 2], 1: [1, 2], 2: [1, 2, 3]}.get(turn, live)  # 2 joins, 0 ends, 3 joins
    stats = on.stats()
    assert stats.calls == 4 and stats.prompts == 10 and stats.cached_tokens > stats.prefilled_tokens
    assert stats.prompt_tokens == off.stats().prefilled_tokens and off.stats().cached_tokens == 0
    assert stats.generated_tokens == off.stats().generated_tokens == 100
    assert (stats - stats) == GenerationStats() and isinstance(on, MeteredPolicy)
    assert on.stats().metrics()["policy/cache_hit_rate"] == pytest.approx(stats.cache_hit_rate)


def test_a_trimmed_history_is_recomputed_from_its_first_changed_token() -> None:
    off, on = pair(tiny_policy())
    params = SamplingParams(max_tokens=12, temperature=0, logprobs=True)
    agents = [LLMAgent(p, AgentConfig(sampling=params, max_prompt_tokens=160)) for p in (off, on)]
    episodes = [agent.start("Find the key.", {"instructions": "Explore the house."}) for agent in agents]
    previous: list[int] = []
    trimmed = 0
    for turn in range(8):
        observation = f"Room {turn}: a door, a window and a lamp."
        base = agents[0].act_batch([episodes[0]], [observation])
        before = on.stats()
        reused = agents[1].act_batch([episodes[1]], [observation])
        assert_same(base, reused, atol=1e-4)
        prompt = reused[0].prompt_ids
        # what was kept from the last turn: its prompt and reply; only the rest is prefilled
        expected = min(common_prefix(np.array(previous), np.array(prompt)), len(prompt) - 1) if previous else 0
        assert (on.stats() - before).cached_tokens == expected
        trimmed += "left out" in on.tokenizer.decode(prompt)
        previous = prompt + reused[0].completion_ids
    assert trimmed >= 2  # the budget dropped old turns, and reuse followed


def test_config_switches_and_weight_changes() -> None:
    with pytest.raises(ConfigError, match="prefix_cache_mb"):
        TransformersConfig(prefix_cache_mb=-1)
    off, on = pair(tiny_policy())
    chat = [{"role": "user", "content": "Say something long."}]
    params = SamplingParams(max_tokens=6, temperature=0)
    off.generate([chat], params)
    off.generate([chat], params)
    assert off.stats().cached_tokens == 0 and len(off.prefix_cache) == 0
    on.generate([chat], params)
    on.generate([chat], params)
    assert on.stats().cached_tokens == len(on.encode(chat)) - 1 and len(on.prefix_cache) == 1
    on.use_model(on.model)  # new weights: nothing kept is valid
    assert len(on.prefix_cache) == 0


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_server_requests_that_extend_an_earlier_one_reuse_its_keys() -> None:
    off, on = pair(tiny_policy())
    first = [{"role": "system", "content": "Be brief. " * 10}, {"role": "user", "content": "Count to five."}]
    body = {"max_tokens": 8, "temperature": 0, "logprobs": True, "return_token_ids": True}
    with start_server(on) as server:
        one = _post(server.url + "/chat/completions", {**body, "messages": first})
        second = first + [{"role": "assistant", "content": one["choices"][0]["message"]["content"]},
                          {"role": "user", "content": "Now to six."}]
        two = _post(server.url + "/chat/completions", {**body, "messages": second})
        with urllib.request.urlopen(server.url.removesuffix("/v1") + "/stats", timeout=10) as response:
            stats = json.loads(response.read())[on.name]
    assert stats["cached_tokens"] >= len(on.encode(first)) - 1 and stats["calls"] == 2
    # each response says how much of its prompt came from the cache (OpenAI's usage field)
    assert one["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert two["usage"]["prompt_tokens_details"]["cached_tokens"] == stats["cached_tokens"]
    expected = off.generate([second], SamplingParams(max_tokens=8, temperature=0, logprobs=True))[0]
    assert two["choices"][0]["token_ids"] == expected.completion_ids
    got = [c["logprob"] for c in two["choices"][0]["logprobs"]["content"]]
    assert np.allclose(got, expected.logprobs, atol=1e-4)


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two threads wait on each other at every small decode op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_embedded_model_turns_are_token_exact_with_reuse(one_thread) -> None:
    """Two episodes of a real dialogue, batched, greedy: every turn's ids equal, logprobs within 1e-3."""
    off, on = pair(make_policy("embedded", device="cpu"))
    params = SamplingParams(max_tokens=16, temperature=0, logprobs=True)
    agents = [LLMAgent(p, AgentConfig(sampling=params, max_prompt_tokens=250)) for p in (off, on)]
    infos = [{"instructions": "Guess the secret number between 1 and 100. Reply with one number."},
             {"instructions": "Use the calculator tool to add numbers.",
              "tools": [{"name": "add", "parameters": {"a": "number", "b": "number"}}]}]
    starts = ["Guess a number between 1 and 100.", "What is 12 + 30?"]
    episodes = [[agent.start(o, info) for o, info in zip(starts, infos, strict=True)] for agent in agents]
    observations = list(starts)
    trimmed = 0
    for turn in range(5):
        base = agents[0].act_batch(episodes[0], observations)
        reused = agents[1].act_batch(episodes[1], observations)
        assert_same(base, reused, atol=1e-3)
        trimmed += sum("left out" in on.tokenizer.decode(c.prompt_ids) for c in reused)
        observations = [f"Turn {turn}: too low, guess higher.", f"Turn {turn}: the tool answered 42. Go on."]
    assert on.stats().cached_tokens > 2 * on.stats().prefilled_tokens
    assert trimmed >= 1
