"""Serving a checkpoint with vLLM, the way its users run it: ``vllm serve`` behind the ``openai`` backend.

selfgym runs no vLLM code in-process. ``vllm_command`` writes the ``vllm serve`` command for a
selfgym checkpoint (a model directory, ``"embedded"``, or a LoRA adapter directory, which is served
on its base with ``--enable-lora``); ``start_vllm`` runs it when ``vllm`` is installed and returns
a handle whose ``policy()`` talks to it with token ids and log-probabilities requested::

    vllm serve ./checkpoints/iter-3 --host 127.0.0.1 --port 8000 --served-model-name policy \\
        --max-logprobs 1 --generation-config vllm
    selfgym run selfgym/Code-v0 --agent llm:openai:http://127.0.0.1:8000/v1

For a LoRA adapter: ``vllm serve BASE --enable-lora --lora-modules policy=ADAPTER_DIR
--max-lora-rank R``; requests name the adapter (``policy``) as the model. With
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` in its environment, a trainer can load a new adapter
into the running server with ``load_lora_adapter`` (vLLM's ``/v1/load_lora_adapter``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from selfgym.errors import ConfigError, InfrastructureError
from selfgym.models import EMBEDDED, embedded_checkpoint

__all__ = ["VLLMServer", "load_lora_adapter", "start_vllm", "vllm_command"]


def _base_of(model: str | os.PathLike[str]) -> tuple[str, Path | None, int]:
    """(what vLLM loads, the LoRA adapter dir or None, the adapter's rank)."""
    if str(model) == EMBEDDED:
        return str(embedded_checkpoint()), None, 0
    path = Path(model).expanduser()
    adapter_config = path / "adapter_config.json"
    if adapter_config.is_file():
        config = json.loads(adapter_config.read_text())
        base, _, _ = _base_of(config["base_model_name_or_path"])
        return base, path.resolve(), int(config.get("r", 16))
    return str(path.resolve()) if path.exists() else str(model), None, 0


def vllm_command(
    model: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str = "policy",
    extra_args: tuple[str, ...] = (),
) -> list[str]:
    """The ``vllm serve`` argv for a selfgym model spec (checkpoint dir, ``"embedded"`` or LoRA adapter dir).

    The model is served as ``served_name``. ``--generation-config vllm`` keeps the checkpoint's
    sampling defaults out of the way (selfgym sends every sampling parameter), and
    ``--max-logprobs 1`` is all the per-token log-probabilities need.
    """
    base, adapter, rank = _base_of(model)
    argv = ["vllm", "serve", base, "--host", host, "--port", str(port), "--max-logprobs", "1",
            "--generation-config", "vllm"]
    if adapter is None:
        argv += ["--served-model-name", served_name]
    else:
        argv += ["--enable-lora", "--lora-modules", f"{served_name}={adapter}", "--max-lora-rank",
                 str(max(8, rank))]
    return argv + list(extra_args)


class VLLMServer:
    """A ``vllm serve`` process started by ``start_vllm``."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, served_name: str, log_path: Path) -> None:
        self.process, self.url, self.served_name, self.log_path = process, url, served_name, log_path

    def policy(self, **config: Any) -> Any:
        """An ``OpenAIPolicy`` for this server."""
        from .openai_policy import OpenAIConfig, OpenAIPolicy

        return OpenAIPolicy(OpenAIConfig(base_url=self.url, model=self.served_name, **config))

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def start_vllm(
    model: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str = "policy",
    extra_args: tuple[str, ...] = (),
    log_path: str | os.PathLike[str] | None = None,
    wait_s: float = 900.0,
) -> VLLMServer:
    """Start ``vllm serve`` for ``model`` and wait until it answers ``/health``.

    Raises:
        ConfigError: vLLM is not installed here.
        InfrastructureError: the server exited or did not come up within ``wait_s``.
    """
    if shutil.which("vllm") is None:
        raise ConfigError("vllm is not installed (pip install 'selfgym[gpu]' on a CUDA machine); or run "
                          f"`{' '.join(vllm_command(model, host=host, port=port))}` elsewhere and use "
                          "--agent llm:openai:http://HOST:PORT/v1")
    argv = vllm_command(model, host=host, port=port, served_name=served_name, extra_args=extra_args)
    log = Path(log_path) if log_path else Path(os.environ.get("TMPDIR", "/tmp")) / f"vllm-{port}.log"
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    with log.open("wb") as fh:
        process = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)
    server = VLLMServer(process, f"http://{host}:{port}/v1", served_name, log)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InfrastructureError(f"vllm serve exited with code {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            time.sleep(2)
    server.stop()
    raise InfrastructureError(f"vllm serve did not answer /health within {wait_s:.0f} s; see {log}")


def load_lora_adapter(base_url: str, name: str, path: str | os.PathLike[str], *, timeout_s: float = 300.0) -> None:
    """Load (or replace) a LoRA adapter in a running vLLM server (``/v1/load_lora_adapter``)."""
    body = json.dumps({"lora_name": name, "lora_path": str(Path(path).resolve())}).encode()
    request = urllib.request.Request(f"{base_url.rstrip('/')}/load_lora_adapter", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        raise InfrastructureError(f"loading adapter {name!r} into {base_url} failed: "
                                  f"{exc.code} {exc.read().decode(errors='replace')}") from exc
