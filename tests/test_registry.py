"""Third-party envs register through the ``selfgym.envs`` entry-point group."""

import os
import subprocess
import sys
import textwrap

import pytest

import selfgym
from selfgym.errors import ConfigError, UnknownEnvError


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


def test_an_argument_the_env_does_not_take_is_named_with_the_ones_it_does():
    with pytest.raises(ConfigError, match=r"selfgym/Tools-v0 takes no argument 'max_turns'; its arguments: .*"
                                          r"max_episode_steps.*task_source"):
        selfgym.make("Tools-v0", max_turns=4)
    env = selfgym.make("Tools-v0", max_episode_steps=4)  # gymnasium's own keyword still goes through
    assert env.spec.max_episode_steps == 4
    env.close()


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        selfgym.register_env("Guess-v0", "selfgym.envs.guess:GuessEnv")


def test_task_source_registry():
    source = selfgym.make_task_source("guess")
    assert source.name == "guess" and "guess" in selfgym.list_task_sources()
    with pytest.raises(KeyError, match="no task source"):
        selfgym.make_task_source("gess")


def _build_plugin_project(root):
    """A throw-away plugin project as a user writes one: a light registration module named by the
    entry point, the env class in a module of its own that gymnasium imports on first make."""
    project = root / "acme-vec"
    (project / "acme_vec").mkdir(parents=True)
    (project / "acme_vec" / "__init__.py").write_text("")
    (project / "acme_vec" / "registration.py").write_text(textwrap.dedent('''
        import selfgym

        def register():
            selfgym.register_env("acmevec/Echo-v0", "acme_vec.env:Echo", max_episode_steps=3)
    '''))
    (project / "acme_vec" / "env.py").write_text(textwrap.dedent('''
        from selfgym.envs.base import LLMEnv, StepResult
        from selfgym.envs.tasks import ListTaskSource
        from selfgym.types import Task

        class Echo(LLMEnv):
            def default_task_source(self):
                return ListTaskSource([Task(id="echo/1", family="echo", prompt="say hi")])
            def env_response(self, action):
                ok = action.strip() == "hi"
                return StepResult(observation="ok" if ok else "no", reward=float(ok), terminated=ok, success=ok)
    '''))
    (project / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "acme-vec"
        version = "0.1"
        [project.entry-points."selfgym.envs"]
        acmevec = "acme_vec.registration:register"
        [tool.setuptools]
        packages = ["acme_vec"]
    '''))
    return project


def test_installed_plugin_env_is_made_by_plain_gymnasium_and_its_vector_envs(tmp_path):
    """After ``import selfgym`` (nothing else), an installed plugin's env is reachable by
    ``gymnasium.make`` and by gymnasium's sync and async vector envs; its env module is imported
    only when an env is made."""
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(_build_plugin_project(tmp_path))],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    code = textwrap.dedent('''
        import sys
        import gymnasium
        import selfgym

        assert "acme_vec.registration" in sys.modules and "acme_vec.env" not in sys.modules
        env = gymnasium.make("acmevec/Echo-v0")
        env.reset(seed=0)
        print("make", env.step("hi")[1])
        for mode in ("sync", "async"):
            vec = gymnasium.make_vec("acmevec/Echo-v0", num_envs=2, vectorization_mode=mode)
            vec.reset(seed=0)
            _, rewards, terminated, _, _ = vec.step(["hi", "ho"])
            print(mode, rewards.tolist(), terminated.tolist())
            vec.close()
    ''')
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["make 1.0", "sync [1.0, 0.0] [True, False]",
                                          "async [1.0, 0.0] [True, False]"], out.stdout
