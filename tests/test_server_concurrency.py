"""The OpenAI-compatible server under concurrent load, on the tiny model over real HTTP on 127.0.0.1:
requests for different adapters and sampling settings at once, ``n > 1``, one failing batch among good
ones, and ``python -m selfgym.agents.server``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from selfgym.agents.models import tiny_model_dir
from selfgym.agents.policy import SamplingParams, make_policy
from selfgym.agents.server import start_server
from selfgym.agents.testing import CountingPolicy, make_tiny_adapter, tiny_policy

CHATS = [[{"role": "user", "content": f"Name {i} colours."}] for i in range(1, 5)]


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_all(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Send every request at once (one thread each), answers in request order."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda body: post(url, body), bodies))


def ids(body: dict[str, Any]) -> list[list[int]]:
    return [choice["token_ids"] for choice in body["choices"]]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return make_tiny_adapter(tmp_path_factory.mktemp("lora") / "iter-1")


def test_concurrent_requests_for_two_models_and_two_settings_each_get_their_own_answer(adapter):
    loaded: dict[str, CountingPolicy] = {}

    def load(path: str, name: str) -> CountingPolicy:
        loaded[name] = CountingPolicy(make_policy(path, cached=False, name=name, device="cpu"))
        return loaded[name]

    base = CountingPolicy(tiny_policy())
    with start_server(base, batch_window_ms=300, adapter_loader=load) as server:
        load_request = urllib.request.Request(server.url + "/load_lora_adapter", headers={
            "Content-Type": "application/json"}, data=json.dumps({"lora_name": "iter-1", "lora_path": str(adapter)}).encode())
        urllib.request.urlopen(load_request, timeout=60).read()
        settings = [(model, max_tokens) for model in ("tiny", "iter-1") for max_tokens in (3, 6)]
        bodies = [{"model": model, "messages": chat, "max_tokens": max_tokens, "temperature": 0,
                   "return_token_ids": True} for model, max_tokens in settings for chat in CHATS[:2]]
        base_calls, adapter_calls = len(base.calls), len(loaded["iter-1"].calls)
        answers = post_all(server.url, bodies)
    assert all(status == 200 for status, _ in answers), answers
    local = {"tiny": tiny_policy(), "iter-1": make_policy(str(adapter), cached=False, device="cpu")}
    for (model, max_tokens), i in zip(settings, range(0, len(bodies), 2), strict=True):
        expected = local[model].generate(CHATS[:2], SamplingParams(max_tokens=max_tokens, temperature=0))
        got = [ids(answers[i + j][1])[0] for j in range(2)]
        assert got == [c.completion_ids for c in expected], (model, max_tokens)
        assert all(answers[i + j][1]["model"] == model for j in range(2))
    assert ids(answers[0][1]) != ids(answers[4][1])  # the adapter, not the base model, answered "iter-1"
    # batched per (model, settings): each generate call saw one model and one max_tokens, two prompts
    assert base.calls[base_calls:] == [2, 2] and loaded["iter-1"].calls[adapter_calls:] == [2, 2]


def test_n_choices_are_distinct_samples_from_one_batch_and_reproducible_with_a_seed():
    base = CountingPolicy(tiny_policy())
    with start_server(base, batch_window_ms=50) as server:
        body = {"messages": CHATS[0], "max_tokens": 6, "temperature": 1.0, "n": 3, "seed": 7, "return_token_ids": True,
                "logprobs": True}
        status, first = post(server.url, body)
        _, again = post(server.url, body)
    assert status == 200 and [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert len({tuple(t) for t in ids(first)}) == 3  # three samples, not one answer three times
    assert ids(again) == ids(first)
    assert first["usage"]["completion_tokens"] == sum(len(t) for t in ids(first))
    assert first["prompt_token_ids"] == tiny_policy().encode(CHATS[0])
    assert all(len(c["logprobs"]["content"]) == len(c["token_ids"]) for c in first["choices"])
    assert base.calls == [3, 3]  # the n copies of a request are generated together


class FailsOnLongRequests:
    """The tiny model, except that a request for 7 tokens runs out of memory (as a big batch might)."""

    def __init__(self) -> None:
        self.policy = CountingPolicy(tiny_policy())
        self.name = "tiny"

    def count_tokens(self, messages: Sequence[Any]) -> int:
        return self.policy.count_tokens(messages)

    def generate(self, prompts: Sequence[Any], params: SamplingParams) -> list[Any]:
        if params.max_tokens == 7:
            raise RuntimeError("CUDA out of memory")
        return self.policy.generate(prompts, params)


def test_one_failing_batch_fails_only_its_own_requests():
    policy = FailsOnLongRequests()
    with start_server(policy, batch_window_ms=300) as server:
        bodies = [{"messages": chat, "max_tokens": tokens, "temperature": 0, "return_token_ids": True}
                  for tokens in (3, 7, 5) for chat in CHATS[:2]]
        answers = post_all(server.url, bodies)
        later = post(server.url, bodies[0])
    assert [status for status, _ in answers] == [200, 200, 500, 500, 200, 200]
    for _, body in answers[2:4]:
        assert body["error"]["message"] == "generation failed: RuntimeError: CUDA out of memory"
        assert body["error"]["type"] == "server_error"
    for (_, body), tokens, chat in zip(answers[:2] + answers[4:], (3, 3, 5, 5), CHATS[:2] * 2, strict=True):
        assert ids(body) == [tiny_policy().generate([chat], SamplingParams(max_tokens=tokens, temperature=0))[0]
                             .completion_ids]
    assert later[0] == 200 and ids(later[1]) == ids(answers[0][1])  # the server goes on serving
    assert sorted(policy.policy.calls[:2]) == [2, 2]  # the good requests were batched in the same window


def test_python_m_entry_point_serves_a_model_dir():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "selfgym.agents.server", str(tiny_model_dir()), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=5) as response:
                    if json.loads(response.read()) == {"status": "ok"}:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.3)
        with urllib.request.urlopen(url + "/models", timeout=10) as response:
            (served,) = [m["id"] for m in json.loads(response.read())["data"]]
        status, body = post(url, {"messages": CHATS[0], "max_tokens": 5, "temperature": 0, "return_token_ids": True})
        assert status == 200 and body["model"] == served
        expected = tiny_policy().generate(CHATS[:1], SamplingParams(max_tokens=5, temperature=0))[0]
        assert ids(body) == [expected.completion_ids] and body["prompt_token_ids"] == expected.prompt_ids
    finally:
        proc.terminate()
        proc.wait(timeout=30)
