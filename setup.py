"""Maps the top-level folders onto the ``selfgym`` package tree.

``envs/`` installs as ``selfgym.envs``, ``agents/`` as ``selfgym.agents`` and so on. Packages are
discovered here so that a new sub-package (``envs/web``) needs no edit to the build files.
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
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            packages.append(".".join([name, *rel.parts]) if rel.parts else name)
    return packages, package_dir


packages, package_dir = _packages()
setup(packages=packages, package_dir=package_dir)
