"""The folder mapping (envs/ -> selfgym.envs, ...) holds in a regular wheel install too."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_the_mapped_packages_and_imports_from_it(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("selfgym-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("selfgym/__init__.py", "selfgym/envs/base.py", "selfgym/envs/guess.py", "selfgym/agents/base.py",
                 "selfgym/skills/__init__.py", "selfgym/trainers/__init__.py"):
        assert path in names, path
    assert not any(n.startswith(("envs/", "agents/", "tests/")) for n in names)
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    code = ("import selfgym, gymnasium; env = gymnasium.make('selfgym/Guess-v0'); env.reset(seed=0); "
            "import selfgym.envs.base as b; print(b.__file__)")
    # -I would drop site-packages (gymnasium); PYTHONPATH first makes the wheel's copy win over the editable one.
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().startswith(str(target))
