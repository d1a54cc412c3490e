"""Imports run one way: core <- envs, agents, skills, trainers <- the runner <- the CLI.

Every module of the package is parsed (no import needed) and every ``import`` in it, function-level
and ``TYPE_CHECKING`` ones included, is resolved to the layer it reaches. An import of a higher
layer fails the test with the file, the line and the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where each installed sub-package lives in the repository (setup.py maps them the same way).
PACKAGES = {"selfgym": ROOT / "selfgym", "selfgym.envs": ROOT / "envs", "selfgym.agents": ROOT / "agents",
            "selfgym.skills": ROOT / "skills", "selfgym.trainers": ROOT / "trainers"}
LAYERS = ("core", "envs, agents, skills, trainers", "runner", "cli")
# ``import selfgym`` registers the built-in envs (as ``import gymnasium`` does): the package's
# own entry point may name the envs' light registration function.
ALLOWED = {("selfgym", "selfgym.envs")}


def layer(module: str) -> int:
    """0 core, 1 envs/agents/skills/trainers, 2 the runner (and the env server, the viewer), 3 the command line."""
    parts = module.split(".")
    if parts[0] != "selfgym":
        return -1  # a third-party or standard module
    if parts[-1] == "cli" or parts[-1] == "__main__":
        return 3
    if len(parts) > 1 and parts[1] in ("run", "serve", "view", "integrations"):
        return 2  # the runner and what drives it (env server, run viewer, trainer integrations)
    if len(parts) > 1 and parts[1] in ("envs", "agents", "skills", "trainers"):
        return 1
    return 0


def modules() -> dict[str, Path]:
    """Every module of the package by its installed name (sub-packages of ``selfgym`` counted once)."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            if package == "selfgym" and rel.parts and rel.parts[0] in ("envs", "agents", "skills", "trainers"):
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement of the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            known = modules()
            for alias in node.names:  # ``from selfgym.run import rollout`` imports the module selfgym.run.rollout
                full = f"{target}.{alias.name}"
                out.append((node.lineno, full if full in known else target))
    return sorted(set(out))


def upward_imports() -> list[str]:
    found = []
    for module, path in modules().items():
        mine = layer(module)
        for line, target in imports(module, path):
            theirs = layer(target)
            if theirs > mine and (module, target) not in ALLOWED:
                rel = path.relative_to(ROOT)
                found.append(f"{rel}:{line}: {module} ({LAYERS[mine]}) imports {target} ({LAYERS[theirs]})")
    return found


def test_no_module_imports_a_higher_layer():
    violations = upward_imports()
    assert violations == [], "upward imports:\n" + "\n".join(violations)


def test_the_walk_sees_every_layer_and_function_level_imports():
    found = modules()
    assert {layer(m) for m in found} == {0, 1, 2, 3}
    assert "selfgym.envs.code.harness" in found and "selfgym.run.rollout" in found
    # a function-level import is seen: the code env imports the task registry inside __init__
    assert any(target == "selfgym.registry" for _, target in imports("selfgym.envs.code.env", found["selfgym.envs.code.env"]))
