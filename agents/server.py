"""A small OpenAI-compatible server over any ``Policy`` (``selfgym serve``).

It speaks the subset of the chat-completions API that agents use, plus vLLM's extensions for RL
(``return_token_ids``: ``prompt_token_ids`` in the response and ``token_ids`` in each choice;
``return_tokens_as_token_ids``: logprob tokens written ``token_id:N``; ``top_k``) and vLLM's
``/v1/load_lora_adapter`` for putting a freshly trained adapter behind a running server. Requests that
arrive together are batched into one ``policy.generate`` call (requests with the same sampling
settings, up to ``max_batch_size``, gathered for ``batch_window_ms``), so concurrent agents share the
model the way they would with vLLM. Streaming is not supported.

A request that extends an earlier one (the next turn of a dialogue) reuses the keys/values the
transformers backend kept for the earlier tokens (``agents/kvcache.py``), as vLLM's automatic
prefix caching does; ``GET /stats`` shows each served policy's ``GenerationStats`` (prefilled,
reused and generated tokens, seconds in the model).

Run it with ``serve("embedded", port=8000)``, or in-process for tests with ``start_server(policy)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from selfgym.types import Completion, new_id

from .policy import MeteredPolicy, Policy, SamplingParams

__all__ = ["ChatRequest", "LoadLoraRequest", "RunningServer", "create_app", "serve", "start_server"]


class ChatMessageIn(BaseModel):
    """One message of a request (extra OpenAI fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: str | None = ""


class ChatRequest(BaseModel):
    """The chat-completions request fields this server reads (others are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessageIn]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    logprobs: bool = False
    top_logprobs: int | None = None
    stream: bool = False
    return_token_ids: bool = False
    return_tokens_as_token_ids: bool = False


class LoadLoraRequest(BaseModel):
    """vLLM's ``/v1/load_lora_adapter`` body."""

    lora_name: str
    lora_path: str


@dataclass
class _Pending:
    model: str
    messages: list[dict[str, Any]]
    params: SamplingParams
    future: asyncio.Future[Completion]


class _Batcher:
    """Collects concurrent requests and runs them as batched ``generate`` calls on one worker thread.

    ``policies`` maps served model names to policies; loading an adapter adds one.
    """

    def __init__(self, policies: dict[str, Policy], max_batch_size: int, window_s: float) -> None:
        self.policies, self.max_batch_size, self.window_s = policies, max_batch_size, window_s
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self.batches = 0

    async def submit(self, model: str, messages: list[dict[str, Any]], params: SamplingParams) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Pending(model, messages, params, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch_size:
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time())))
                except TimeoutError:
                    break
            groups: dict[tuple[str, SamplingParams], list[_Pending]] = {}
            for item in batch:
                groups.setdefault((item.model, item.params), []).append(item)
            for (model, params), items in groups.items():
                try:
                    outs = await loop.run_in_executor(
                        self.worker, self.policies[model].generate, [i.messages for i in items], params)
                    self.batches += 1
                    for item, out in zip(items, outs, strict=True):
                        item.future.set_result(out)
                except Exception as exc:  # reported to each waiting request as a 500
                    for item in items:
                        if not item.future.done():
                            item.future.set_exception(exc)


def _load_adapter(path: str, name: str) -> Policy:
    from .policy import make_policy

    return make_policy(path, cached=False, name=name)


def _choice(index: int, completion: Completion, request: ChatRequest, tokenizer: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": index, "finish_reason": completion.finish_reason,
        "message": {"role": "assistant", "content": completion.text},
        "logprobs": None,
    }
    if request.logprobs and completion.logprobs is not None:
        def token(i: int) -> str:
            if request.return_tokens_as_token_ids or tokenizer is None:
                return f"token_id:{i}"
            return tokenizer.convert_ids_to_tokens(i)

        choice["logprobs"] = {"content": [
            {"token": token(i), "logprob": lp, "bytes": None, "top_logprobs": []}
            for i, lp in zip(completion.completion_ids, completion.logprobs, strict=True)
        ]}
    if request.return_token_ids:
        choice["token_ids"] = completion.completion_ids
    return choice


def create_app(
    policy: Policy,
    *,
    max_batch_size: int = 64,
    batch_window_ms: float = 5.0,
    adapter_loader: Callable[[str, str], Policy] | None = _load_adapter,
) -> Any:
    """The FastAPI app serving ``policy`` under ``/v1``.

    Routes: ``/health``, ``/stats``, ``/v1/models``, ``/v1/chat/completions`` and, unless ``adapter_loader``
    is None, vLLM's ``/v1/load_lora_adapter`` (``{"lora_name", "lora_path"}``: the adapter is
    loaded with ``adapter_loader(path, name)`` and served as model ``lora_name``, replacing an
    earlier one of that name; requests naming no model keep getting ``policy``).
    """
    from fastapi import FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse

    batcher = _Batcher({policy.name: policy}, max_batch_size, batch_window_ms / 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()
        batcher.worker.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="selfgym policy server", lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str) -> JSONResponse:  # the OpenAI / vLLM error body
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Any, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Any, exc: RequestValidationError) -> JSONResponse:
        return error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Each served policy's generation counters (those that keep them)."""
        return {name: p.stats().metrics(prefix="") for name, p in batcher.policies.items()
                if isinstance(p, MeteredPolicy)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "selfgym"}
                                           for name in batcher.policies]}

    @app.post("/v1/load_lora_adapter")
    async def load_lora_adapter(request: LoadLoraRequest) -> PlainTextResponse:
        if adapter_loader is None:
            raise HTTPException(404, "this server does not load adapters")
        if request.lora_name == policy.name:
            raise HTTPException(400, f"{request.lora_name!r} is the base model's name; pick another")
        try:  # on the worker thread, between generate calls
            loaded = await asyncio.get_running_loop().run_in_executor(
                batcher.worker, adapter_loader, request.lora_path, request.lora_name)
        except Exception as exc:
            raise HTTPException(400, f"cannot load {request.lora_path}: {type(exc).__name__}: {exc}") from exc
        batcher.policies[request.lora_name] = loaded
        return PlainTextResponse(f"Success: LoRA adapter '{request.lora_name}' added successfully.")

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> dict[str, Any]:
        return await _chat_completion(batcher, policy.name, request)

    return app


async def _chat_completion(batcher: _Batcher, default_model: str, request: ChatRequest) -> dict[str, Any]:
    """One ``/v1/chat/completions`` answer: ``request.n`` completions of the named model (else
    ``default_model``) through the batcher, in the OpenAI body (errors as ``HTTPException``)."""
    from fastapi import HTTPException

    if request.stream:
        raise HTTPException(400, "stream=true is not supported by this server")
    if request.top_logprobs:
        raise HTTPException(400, "top_logprobs is not supported by this server; use logprobs=true")
    model = request.model or default_model
    if model not in batcher.policies:
        raise HTTPException(404, f"model {model!r} is not served here; served: {', '.join(batcher.policies)}")
    tokenizer = getattr(batcher.policies[model], "tokenizer", None)
    try:
        params = SamplingParams(
            max_tokens=request.max_completion_tokens or request.max_tokens or 256,
            temperature=request.temperature, top_p=request.top_p, top_k=request.top_k,
            stop=tuple([request.stop] if isinstance(request.stop, str) else request.stop or ()),
            seed=request.seed, logprobs=request.logprobs,
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    messages = [{"role": m.role, "content": m.content or ""} for m in request.messages]
    try:
        copies = (batcher.submit(model, messages, params) for _ in range(max(1, request.n)))
        outs = await asyncio.gather(*copies)
    except Exception as exc:
        raise HTTPException(500, f"generation failed: {type(exc).__name__}: {exc}") from exc
    body: dict[str, Any] = {
        "id": new_id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
        "model": model, "choices": [_choice(i, c, request, tokenizer) for i, c in enumerate(outs)],
        "usage": {"prompt_tokens": len(outs[0].prompt_ids),
                  "completion_tokens": sum(len(c.completion_ids) for c in outs),
                  "total_tokens": len(outs[0].prompt_ids) + sum(len(c.completion_ids) for c in outs),
                  "prompt_tokens_details": {"cached_tokens": outs[0].cached_tokens}},
    }
    if request.return_token_ids:
        body["prompt_token_ids"] = outs[0].prompt_ids
    return body


class RunningServer:
    """A uvicorn server running in a background thread (``url`` ends in ``/v1``)."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        self.server, self.thread, self.host, self.port = server, thread, host, port
        self.url = f"http://{host}:{port}/v1"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def start_server(policy: Policy, *, host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any) -> RunningServer:
    """Serve ``policy`` from a background thread of this process; ``port=0`` picks a free port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(create_app(policy, **app_kwargs), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="policy-server")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the policy server on {host}:{sock.getsockname()[1]} did not start")
        time.sleep(0.01)
    return RunningServer(server, thread, host, sock.getsockname()[1])


def serve(model: str = "embedded", *, host: str = "127.0.0.1", port: int = 8000, max_batch_size: int = 64,
          batch_window_ms: float = 5.0, **policy_config: Any) -> None:
    """Load ``model`` (see ``make_policy``) and serve it until interrupted (blocking)."""
    import uvicorn

    from .policy import make_policy

    policy = make_policy(model, **policy_config)
    uvicorn.run(create_app(policy, max_batch_size=max_batch_size, batch_window_ms=batch_window_ms),
                host=host, port=port, log_level="info")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve a model over the OpenAI chat-completions API.")
    parser.add_argument("model", nargs="?", default="embedded", help="'embedded', a checkpoint or adapter dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: float32 on a CPU)")
    args = parser.parse_args()
    serve(args.model, host=args.host, port=args.port, **({"dtype": args.dtype} if args.dtype else {}))
