"""docker/compose.yaml and docker/env.Dockerfile name real commands, options, services and configs.

The commands are parsed by the CLIs that will run them (selfgym's and Ray's click commands), without
running anything; only the last test needs a Docker engine.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from selfgym.config import load_toml
from selfgym.run.loopconfig import RunConfig

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "env.Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _argv(service: dict[str, Any]) -> list[str]:
    return [*service.get("entrypoint", []), *service.get("command", [])]


def _selfgym_command(name: str) -> Any:
    import typer

    from selfgym.cli import app

    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _check_argv(argv: list[str]) -> None:
    """Parse ``argv`` with the CLI that will run it; unknown commands or options fail."""
    program, *args = argv
    if program == "selfgym":
        assert "selfgym" in PYPROJECT["project"]["scripts"]
        command = _selfgym_command(args[0])
        command.make_context(args[0], list(args[1:]), resilient_parsing=False)
    elif program == "ray":
        assert any(dep.startswith("ray==") for dep in PYPROJECT["project"]["optional-dependencies"]["ray"])
        if importlib.util.find_spec("ray") is None:
            pytest.skip("ray is not installed: its command line cannot be checked")
        from ray.scripts.scripts import cli

        command = cli.commands[args[0]]
        command.make_context(args[0], list(args[1:]), resilient_parsing=False)
    elif program == "vllm":
        assert args[0] == "serve"
        assert any(dep.startswith("vllm") for dep in PYPROJECT["project"]["optional-dependencies"]["gpu"])
    elif program == "python":
        assert args[0] == "-c"
        compile(args[1], "<healthcheck>", "exec")
    else:
        raise AssertionError(f"unexpected program {program!r} in {argv}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ray.serve's pydantic fields, imported by Ray's CLI
def test_every_command_is_a_real_entry_point_with_real_options(services: dict[str, dict[str, Any]]) -> None:
    assert {"vllm", "env-1", "env-2", "ray-head", "ray-worker", "train"} <= set(services)
    for name, service in services.items():
        argv = _argv(service)
        assert argv, f"{name} has no command"
        _check_argv(argv)
        health = service.get("healthcheck", {}).get("test")
        if health:
            assert health[0] == "CMD"
            _check_argv(health[1:])


def test_env_servers_serve_registered_envs(services: dict[str, dict[str, Any]]) -> None:
    import selfgym

    ids = {info.id for info in selfgym.list_envs()}
    servers = {name: s for name, s in services.items() if s["command"][:2] == ["selfgym", "serve"]}
    assert len(servers) >= 2
    for service in servers.values():
        assert service["command"][2] in ids
        assert service["command"][service["command"].index("--host") + 1] == "0.0.0.0"


def test_the_train_config_loads_and_points_at_the_services(services: dict[str, dict[str, Any]]) -> None:
    train = services["train"]
    argv = _argv(train)
    assert argv[:2] == ["selfgym", "train"]
    config_path = ROOT / argv[2]  # relative to the image's WORKDIR, which holds configs/
    assert "WORKDIR /app" in DOCKERFILE.read_text() and "COPY configs configs" in DOCKERFILE.read_text()
    config = load_toml(config_path, RunConfig)
    assert config.rollout.backend == "ray" and config.rollout.env_servers
    for url in config.rollout.env_servers:
        parsed = urlparse(url)
        server = services[parsed.hostname or ""]
        assert server["command"][server["command"].index("--port") + 1] == str(parsed.port)
        assert server["command"][2] == config.env.id
        env_args = [server["command"][i + 1] for i, a in enumerate(server["command"]) if a == "--env-arg"]
        assert sorted(env_args) == sorted(f"{k}={v}" for k, v in config.env.kwargs.items())
    ray_host = train["environment"]["RAY_ADDRESS"].split(":")[0]
    assert ray_host in services and "--head" in services[ray_host]["command"]
    teacher = config.policy.teacher_model
    if teacher:
        url, _, model = teacher.removeprefix("openai:").partition("#")
        vllm = services[urlparse(url).hostname or ""]
        argv = _argv(vllm)
        assert argv[argv.index("--served-model-name") + 1] == model
        assert argv[argv.index("--port") + 1] == str(urlparse(url).port)
        assert train["depends_on"]["vllm"]["required"] is False and vllm["profiles"] == ["gpu"]


def test_the_env_server_image() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "bubblewrap" in text and "chromium" in text
    extras = re.search(r'"\.\[([a-z,]+)\]"', text)
    assert extras and "serve" in extras.group(1).split(",")
    assert set(extras.group(1).split(",")) <= set(PYPROJECT["project"]["optional-dependencies"])
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    cmd = re.search(r"^CMD (\[.*\])", text, re.M)
    assert cmd and yaml.safe_load(cmd.group(1))[:2] == ["selfgym", "serve"]
    for copied in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (ROOT / copied).exists(), copied


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.docker
def test_docker_compose_accepts_the_file() -> None:
    if not _docker_engine():
        pytest.skip("no Docker engine answers (docker info failed or docker is not installed)")
    out = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--profile", "gpu", "config", "--quiet"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
