"""The openai backend against a real local OpenAI-compatible server (``agents/server.py``) on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfgym.agents.openai_policy import OpenAIConfig, OpenAIPolicy
from selfgym.agents.policy import PolicyError, SamplingParams, make_policy
from selfgym.agents.server import RunningServer, start_server
from selfgym.agents.testing import CountingPolicy, make_tiny_adapter, tiny_policy
from selfgym.agents.vllm import load_lora_adapter
from selfgym.errors import ConfigError, InfrastructureError

CHATS = [[{"role": "user", "content": f"Count to {i}, please."}] for i in range(1, 7)]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[RunningServer, CountingPolicy]]:
    policy = CountingPolicy(tiny_policy())
    with start_server(policy, batch_window_ms=50) as server:
        yield server, policy


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_remote_completions_match_local_ones_token_for_token(served: tuple[RunningServer, CountingPolicy]) -> None:
    server, counted = served
    client = OpenAIPolicy(OpenAIConfig(base_url=server.url, max_concurrency=8))
    assert client.model == "tiny" and client.name == "tiny"  # discovered from /v1/models
    params = SamplingParams(max_tokens=12, temperature=0)
    calls_before = len(counted.calls)
    remote = client.generate(CHATS, params)
    local = tiny_policy().generate(CHATS, params)
    for r, lo in zip(remote, local, strict=True):
        assert r.prompt_ids == lo.prompt_ids and r.completion_ids == lo.completion_ids
        assert r.text == lo.text and r.finish_reason == lo.finish_reason
        assert r.logprobs == pytest.approx(lo.logprobs, abs=1e-5)
    assert sum(counted.calls[calls_before:]) == len(CHATS)  # each request reached the policy once
    client.close()


def test_requests_sent_together_are_served_in_one_generate_call() -> None:
    # A window far longer than the client needs to send six requests, closed early by the batch
    # size: the outcome does not depend on how busy the machine is.
    counted = CountingPolicy(tiny_policy())
    with start_server(counted, batch_window_ms=20_000, max_batch_size=len(CHATS)) as server:
        client = OpenAIPolicy(OpenAIConfig(base_url=server.url, max_concurrency=len(CHATS)))
        start = time.perf_counter()
        remote = client.generate(CHATS, SamplingParams(max_tokens=4, temperature=0))
        elapsed = time.perf_counter() - start
        client.close()
    assert counted.calls == [len(CHATS)], counted.calls
    assert sorted(p[0]["content"] for p in counted.prompts[0]) == sorted(c[0]["content"] for c in CHATS)
    assert len(remote) == len(CHATS)
    assert elapsed < 20, f"{elapsed:.1f} s: the batch waited out its window instead of closing when full"


def test_count_tokens_exact_with_tokenizer_and_estimated_without(
        served: tuple[RunningServer, CountingPolicy]) -> None:
    server, _ = served
    exact = OpenAIPolicy(OpenAIConfig(base_url=server.url, model="tiny",
                                      tokenizer=str(tiny_policy().config.model)))
    chat = [{"role": "system", "content": "You are an agent. Reply with a single integer, your guess."},
            {"role": "user", "content": "I am thinking of an integer between 1 and 64. Guess it."},
            {"role": "assistant", "content": "32"}, {"role": "user", "content": "lower"}]
    assert exact.count_tokens(chat) == len(tiny_policy().encode(chat))
    guess = OpenAIPolicy(OpenAIConfig(base_url=server.url, model="tiny"))
    assert 0.5 < guess.count_tokens(chat) / exact.count_tokens(chat) < 2


def test_server_speaks_the_vllm_extensions(served: tuple[RunningServer, CountingPolicy]) -> None:
    server, _ = served
    url = server.url + "/chat/completions"
    status, body = post(url, {"messages": CHATS[0], "max_tokens": 5, "temperature": 0, "logprobs": True,
                              "return_token_ids": True, "return_tokens_as_token_ids": True, "n": 2})
    assert status == 200 and len(body["choices"]) == 2
    choice = body["choices"][0]
    assert body["prompt_token_ids"] == tiny_policy().encode(CHATS[0])
    tokens = [e["token"] for e in choice["logprobs"]["content"]]
    assert [int(t.removeprefix("token_id:")) for t in tokens] == choice["token_ids"]
    assert body["usage"]["completion_tokens"] == sum(len(c["token_ids"]) for c in body["choices"])
    plain = post(url, {"messages": CHATS[0], "max_tokens": 5, "temperature": 0, "logprobs": True})[1]
    assert "token_ids" not in plain["choices"][0] and not plain["choices"][0]["logprobs"]["content"][0][
        "token"].startswith("token_id:")
    assert post(url, {"messages": CHATS[0], "stream": True})[0] == 400
    assert post(url, {"messages": CHATS[0], "model": "other"})[0] == 404
    assert post(url, {"messages": CHATS[0], "temperature": -2})[0] == 400


def test_a_failing_backend_and_a_dead_server_raise_policy_errors() -> None:
    class Broken:
        name = "broken"

        def count_tokens(self, messages: object) -> int:
            return 1

        def generate(self, prompts: object, params: object) -> list:
            raise RuntimeError("CUDA error: device lost")

    with start_server(Broken()) as server:
        client = OpenAIPolicy(OpenAIConfig(base_url=server.url, max_retries=0))
        with pytest.raises(PolicyError, match="device lost"):
            client.generate(CHATS[:2], SamplingParams(max_tokens=4))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = OpenAIPolicy(OpenAIConfig(base_url=f"http://127.0.0.1:{port}/v1", model="x", max_retries=1))
    start = time.perf_counter()
    with pytest.raises(PolicyError) as info:
        dead.generate(CHATS[:1], SamplingParams(max_tokens=4))
    assert isinstance(info.value, InfrastructureError)  # episodes waiting on it are aborted, not scored
    assert time.perf_counter() - start < 30


def test_a_trained_adapter_is_loaded_into_the_running_server(served: tuple[RunningServer, CountingPolicy],
                                                             tmp_path: Path) -> None:
    server, _ = served
    adapter = make_tiny_adapter(tmp_path / "iter-1")
    load_lora_adapter(server.url, "iter-1", adapter)
    assert {m.id for m in OpenAIPolicy(OpenAIConfig(base_url=server.url)).client.models.list().data} == {
        "tiny", "iter-1"}
    params = SamplingParams(max_tokens=8, temperature=0)
    tuned = OpenAIPolicy(OpenAIConfig(base_url=server.url, model="iter-1")).generate(CHATS[:2], params)
    local = make_policy(str(adapter), cached=False, device="cpu").generate(CHATS[:2], params)
    base = tiny_policy().generate(CHATS[:2], params)
    assert [c.completion_ids for c in tuned] == [c.completion_ids for c in local]
    assert [c.logprobs for c in tuned] != [c.logprobs for c in base]  # the adapter, not the base, answered
    with pytest.raises(InfrastructureError, match="cannot load"):
        load_lora_adapter(server.url, "broken", tmp_path / "missing")


def test_make_policy_parses_openai_specs(served: tuple[RunningServer, CountingPolicy]) -> None:
    server, _ = served
    policy = make_policy(f"openai:{server.url}#tiny", cached=False, max_concurrency=2)
    assert isinstance(policy, OpenAIPolicy) and policy.model == "tiny" and policy.config.max_concurrency == 2
    with pytest.raises(ConfigError, match="http"):
        OpenAIConfig(base_url="localhost:8000")


def test_the_client_reports_how_much_of_a_prompt_the_server_had_cached(
        served: tuple[RunningServer, CountingPolicy]) -> None:
    server, _ = served
    client = OpenAIPolicy(OpenAIConfig(base_url=server.url))
    params = SamplingParams(max_tokens=6, temperature=0)
    first = [{"role": "user", "content": "Name three rivers of a country you like, one per line."}]
    one = client.generate([first], params)[0]
    second = first + [{"role": "assistant", "content": one.text}, {"role": "user", "content": "And a lake?"}]
    two = client.generate([second], params)[0]
    assert one.cached_tokens < len(one.prompt_ids) - 1  # at most the chat template's shared system prefix
    assert len(one.prompt_ids) - 1 <= two.cached_tokens < len(two.prompt_ids)
    client.close()
