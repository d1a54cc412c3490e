"""Third-party envs register through the ``selfgym.envs`` entry-point group."""

import os
import subprocess
import sys
import textwrap

import pytest

import selfgym
from selfgym.errors import UnknownEnvError


def _write_plugin(root):
    pkg = root / "acme_env"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        import selfgym
        from selfgym.envs.base import LLMEnv, StepResult
        from selfgym.envs.tasks import ListTaskSource
        from selfgym.types import Task

        class Echo(LLMEnv):
            def default_task_source(self):
                return ListTaskSource([Task(id="echo/1", family="echo", prompt="say hi")])
            def env_response(self, action):
                ok = action.strip() == "hi"
                return StepResult(observation="ok" if ok else "no", reward=float(ok), terminated=ok, success=ok)

        def register():
            selfgym.register_env("acme/Echo-v0", "acme_env:Echo", description="Say hi.", max_episode_steps=3)
    '''))
    dist = root / "acme_env-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-env\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[selfgym.envs]\nacme = acme_env:register\n")


def test_plugin_env_is_listed_and_made(tmp_path):
    _write_plugin(tmp_path)
    code = textwrap.dedent('''
        import selfgym
        ids = {info.id: info for info in selfgym.list_envs()}
        assert ids["acme/Echo-v0"].plugin == "acme-env", ids["acme/Echo-v0"]
        env = selfgym.make("acme/Echo-v0")
        env.reset(seed=0)
        print(env.step("hi")[1])
    ''')
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.0"
    cli = subprocess.run([sys.executable, "-m", "selfgym.cli", "envs"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert "acme/Echo-v0" in cli.stdout and "acme-env" in cli.stdout


def test_unknown_env_suggests_close_ids():
    with pytest.raises(UnknownEnvError, match="Did you mean selfgym/Guess-v0"):
        selfgym.make("Gues-v0")
    assert selfgym.make("Guess-v0").spec.id == "selfgym/Guess-v0"


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        selfgym.register_env("Guess-v0", "selfgym.envs.guess:GuessEnv")


def test_task_source_registry():
    source = selfgym.make_task_source("guess")
    assert source.name == "guess" and "guess" in selfgym.list_task_sources()
    with pytest.raises(KeyError, match="no task source"):
        selfgym.make_task_source("gess")
