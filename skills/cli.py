"""``selfgym skills list RUN`` / ``selfgym skills show RUN NAME``: the library of a run, with usage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from selfgym.errors import SelfgymError

__all__ = ["skills_app"]

skills_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect a run's skill library.")
console = Console(highlight=False, soft_wrap=True)
RunDir = Annotated[Path, typer.Argument(help="run directory (holds store.sqlite)")]


def _library(run_dir: Path, run_id: str | None, snapshot: str | None = None):
    from selfgym.run.loop import loop_run_id
    from selfgym.store import STORE_FILENAME, Store

    from .library import SkillLibrary

    if not (run_dir / STORE_FILENAME).exists():
        raise SelfgymError(f"{run_dir} has no {STORE_FILENAME}; pass a run directory")
    store = Store(run_dir)
    return SkillLibrary(store, run_id=run_id or loop_run_id(store), snapshot=snapshot)


@skills_app.command("list")
def list_cmd(run_dir: RunDir, run_id: Annotated[str | None, typer.Option("--run")] = None,
             retired: Annotated[bool, typer.Option("--retired", help="include retired skills")] = False,
             snapshot: Annotated[str | None, typer.Option(help="list a pinned snapshot")] = None) -> None:
    """Every skill: version, uses and successes of that version, success rate, status, description."""
    library = _library(run_dir, run_id, snapshot)
    skills = sorted(library.skills(include_retired=retired), key=lambda s: (-s.uses, s.name))
    table = Table("name", "version", "uses", "successes", "rate", "status", "description", box=None,
                  header_style="bold")
    for s in skills:
        rate = "-" if s.success_rate is None else f"{s.success_rate:.2f}"
        table.add_row(s.name, str(s.version), str(s.uses), str(s.successes), rate, s.status, s.description)
    console.print(f"{len(skills)} skills in {run_dir} ({library.run_id})", markup=False)
    console.print(table)
    snaps = library.snapshots()
    if snaps:
        console.print("snapshots: " + ", ".join(f"{x['id']} ({x['n_skills']} skills, checkpoint "
                                                f"{x['checkpoint_id']})" for x in snaps), markup=False)


@skills_app.command("show")
def show_cmd(run_dir: RunDir, name: Annotated[str, typer.Argument(help="skill name")],
             run_id: Annotated[str | None, typer.Option("--run")] = None) -> None:
    """One skill: its code, tests, provenance, usage and every stored version."""
    library = _library(run_dir, run_id)
    skill = library.get(name)
    if skill is None:
        known = ", ".join(s.name for s in library.skills(include_retired=True)) or "none"
        raise SelfgymError(f"no skill {name!r} in {run_dir}; skills: {known}")
    rate = "-" if skill.success_rate is None else f"{skill.success_rate:.2f}"
    console.print(f"{skill.name} v{skill.version} ({skill.status}): {skill.description}\n"
                  f"signature: {skill.signature}\nuses {skill.uses}, successes {skill.successes}, rate {rate}\n"
                  f"from task {skill.source_task_id or '-'}, trajectory {skill.source_trajectory_id or '-'}, "
                  f"checkpoint {skill.author_checkpoint_id or '-'}\n--- code ---\n{skill.code}\n--- tests ---\n"
                  f"{skill.tests}", markup=False)
    versions = library.versions(name)
    console.print(f"--- {len(versions)} stored rows ---", markup=False)
    for v in versions:
        console.print(f"v{v.version} {v.status}, uses {v.uses}, successes {v.successes}: {v.description}",
                      markup=False)
