"""Maps the top-level folders onto the ``selfgym`` package tree.

``envs/`` installs as ``selfgym.envs``, ``agents/`` as ``selfgym.agents`` and so on. Packages are
discovered here so that a new sub-package (``envs/web``) needs no edit to the build files. Every
folder below a package is listed too (data folders such as ``envs/web/sites/shop`` need no
``__init__.py``), so the package-data patterns of pyproject.toml apply to their files.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
FOLDERS = {"selfgym": "selfgym", "selfgym.envs": "envs", "selfgym.agents": "agents",
           "selfgym.skills": "skills", "selfgym.trainers": "trainers"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages, package_dir = [], {}
    for name, folder in FOLDERS.items():
        package_dir[name] = folder
        top = ROOT / folder
        for path in sorted([top, *top.rglob("*")]):
            rel = path.relative_to(top)
            if not path.is_dir() or any(p == "__pycache__" or p.startswith(".") or p.endswith(".egg-info")
                                        for p in rel.parts):
                continue
            packages.append(".".join([name, *rel.parts]) if rel.parts else name)
    return packages, package_dir


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir)
