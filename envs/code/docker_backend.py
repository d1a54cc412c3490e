"""The ``docker`` sandbox backend: one container per warm worker, through the Docker SDK.

Each container runs the fork server with ``--network none``, a read-only root filesystem, tmpfs
``/work`` ``/tmp`` ``/dev/shm``, memory / CPU / pids limits, all capabilities dropped but the few
the server needs, and ``no-new-privileges``; children run under a fresh unprivileged uid. The image
is built from ``docker/sandbox.Dockerfile``::

    docker build -f docker/sandbox.Dockerfile -t selfgym-sandbox:latest docker/

Containers carry the label ``selfgym.sandbox``; after a host crash, remove strays with
``docker rm -f $(docker ps -aq --filter label=selfgym.sandbox)``.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from selfgym.errors import SandboxError

from .pool import WORKER_ENV, child_env, sandbox_uid, worker_config, worker_launch
from .sandbox import SandboxConfig

__all__ = ["DockerBackend", "DockerTransport"]

IMAGE_PYTHON = "python3"
CONTAINER_CAPS = ["SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER"]
FRAME = struct.Struct(">BxxxL")  # the engine's stream multiplexing header: stream id, payload size


def _client() -> Any:
    try:
        import docker
    except ImportError as exc:
        raise SandboxError("the docker SDK is not installed (pip install 'selfgym[docker]')") from exc
    try:
        client = docker.from_env(timeout=10)  # type: ignore[attr-defined]  # the SDK is untyped
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no engine answers"
        raise SandboxError(f"no Docker engine answers ({type(exc).__name__}: {exc})") from exc
    return client


class DockerTransport:
    """A worker container, spoken to through an attached socket (stdout frames demultiplexed)."""

    def __init__(self, client: Any, config: SandboxConfig, command: list[str]) -> None:
        scratch = f"size={config.scratch_mb}m,mode=1777"
        self.container: Any = None
        try:
            self.container = client.containers.create(
                config.image, command, stdin_open=True, tty=False, detach=True, user="0", working_dir="/work",
                network_mode="none", read_only=True, init=True, environment=WORKER_ENV,
                tmpfs={"/work": scratch, "/tmp": scratch, "/dev/shm": scratch},
                mem_limit=f"{config.memory_mb + 256}m", memswap_limit=f"{config.memory_mb + 256}m",
                pids_limit=config.max_procs + 16, nano_cpus=int(config.cpus * 1e9),
                cap_drop=["ALL"], cap_add=CONTAINER_CAPS, security_opt=["no-new-privileges"],
                labels={"selfgym.sandbox": "worker"}, auto_remove=True,  # gone once the worker exits
            )
            self._socket = self.container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            self._raw: socket.socket = getattr(self._socket, "_sock", self._socket)
            self.container.start()
        except Exception as exc:  # noqa: BLE001 - engine/API errors are infrastructure failures
            if self.container is not None:
                self.container.remove(force=True)
            raise SandboxError(f"cannot start a sandbox container from {config.image!r}: {exc}") from exc
        self._init_streams()

    def _init_streams(self) -> None:
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._dead = False

    def send(self, data: bytes) -> None:
        try:
            self._raw.sendall(data)
        except OSError as exc:
            raise EOFError(f"container stdin closed: {exc}") from exc

    def recv(self, size: int, deadline: float) -> bytes:
        while len(self._stdout) < size:
            stream, payload = self._frame(deadline)
            (self._stdout if stream == 1 else self._stderr).extend(payload)
        data = bytes(self._stdout[:size])
        del self._stdout[:size]
        return data

    def _frame(self, deadline: float) -> tuple[int, bytes]:
        stream, size = FRAME.unpack(self._read(FRAME.size, deadline))
        return stream, self._read(size, deadline)

    def _read(self, size: int, deadline: float) -> bytes:
        chunks, left = [], size
        while left:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("container did not answer in time")
            self._raw.settimeout(timeout)
            try:
                chunk = self._raw.recv(left)
            except TimeoutError:  # an OSError too, but the pool must see it as a timeout
                raise
            except OSError as exc:
                raise EOFError(f"container connection lost: {exc}") from exc
            if not chunk:
                self._dead = True
                raise EOFError("container exited")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def alive(self) -> bool:
        # No API round trip per exec: a container that died shows up as EOF on the next request,
        # and the pool retries that request on a fresh worker.
        return not self._dead

    def kill(self) -> None:
        self._dead = True
        try:
            self._raw.close()
        except OSError:
            pass
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def diagnostics(self) -> str:
        text = self._stderr.decode("utf-8", "replace")
        if not text:
            try:
                text = self.container.logs(stdout=False, stderr=True, tail=20).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001 - diagnostics are best effort
                text = ""
        return text[-2000:].strip()


class DockerBackend:
    """Workers in Docker containers (see the module docstring for the isolation they get)."""

    name = "docker"
    isolated = True

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._docker: Any = None

    def check(self) -> None:
        client = self._client()
        try:
            client.images.get(self.config.image)
        except Exception as exc:  # noqa: BLE001 - docker.errors.ImageNotFound and API errors alike
            raise SandboxError(f"image {self.config.image!r} is missing; build it with `docker build -f "
                               f"docker/sandbox.Dockerfile -t {self.config.image} .`") from exc

    def spawn(self, *, warm: bool) -> DockerTransport:
        env = child_env("/work")
        config = worker_config(self.config, workdir="/work", scratch=["/tmp", "/dev/shm"], pidns=True,
                               uid=sandbox_uid(), warm=warm, env=env)
        command, payload = worker_launch(IMAGE_PYTHON, config)
        transport = DockerTransport(self._client(), self.config, command)
        try:
            transport.send(payload)
        except EOFError as exc:
            transport.kill()
            raise SandboxError(f"sandbox container exited at start: {transport.diagnostics() or exc}") from exc
        return transport

    def _client(self) -> Any:
        if self._docker is None:
            self._docker = _client()
        return self._docker
