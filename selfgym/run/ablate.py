"""``selfgym ablate CONFIG --without teacher,skills,reflections,rl``: what each component is worth.

One run of the config as given (``full``) and one run per removed component (``no-<component>``),
each a normal gym-loop run in its own directory under the ablation folder. The variants have the
same budget: the same seed, iterations, tasks per iteration, attempts per task and held-out tasks;
only the named component is switched off (``rl`` sets ``trainer.algorithm = "none"``, so the
weights never change). The comparison reads each variant's store: held-out success before and
after with 95% CIs, the paired difference against ``full`` over the same held-out tasks, train
success, tokens and wall time. It is written as ``ablation.json``, ``ablation.png`` and a
self-contained ``ablation.html``; each variant also gets its own report.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from selfgym.errors import ConfigError
from selfgym.lease import RunLease
from selfgym.run.loopconfig import RunConfig
from selfgym.run.report import fmt_score
from selfgym.stats import paired_difference
from selfgym.store import Store

__all__ = ["COMPONENTS", "AblationResult", "fmt_score", "run_ablation", "variants", "write_comparison"]


@dataclass(frozen=True)
class Component:
    """A part of the loop that can be removed: whether a config uses it, and the config without it."""

    is_on: Callable[[RunConfig], bool]
    off: Callable[[RunConfig], RunConfig]


COMPONENTS: dict[str, Component] = {
    "teacher": Component(lambda c: c.teacher.enabled, lambda c: replace(c, teacher=replace(c.teacher, enabled=False))),
    "skills": Component(lambda c: c.skills.mode != "off", lambda c: replace(c, skills=replace(c.skills, mode="off"))),
    "reflections": Component(lambda c: c.reflections.enabled,
                             lambda c: replace(c, reflections=replace(c.reflections, enabled=False))),
    "rl": Component(lambda c: c.trainer.algorithm != "none",
                    lambda c: replace(c, trainer=replace(c.trainer, algorithm="none"))),
}


def variants(config: RunConfig, without: Sequence[str] | None = None) -> dict[str, RunConfig]:
    """``{"full": config, "no-<component>": config without it, ...}``.

    Args:
        without: components to remove one at a time; default every component the config uses.

    Raises:
        ConfigError: an unknown component, or one the config does not use (nothing to remove).
    """
    unknown = [c for c in without or () if c not in COMPONENTS]
    if unknown:
        raise ConfigError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    if without is None:
        without = [name for name, comp in COMPONENTS.items() if comp.is_on(config)]
    off = [c for c in without if not COMPONENTS[c].is_on(config)]
    if off:
        raise ConfigError(f"{', '.join(off)} already off in config {config.name!r}: nothing to ablate")
    if not without:
        raise ConfigError(f"config {config.name!r} uses none of {', '.join(COMPONENTS)}: nothing to ablate")
    out = {"full": config}
    for name in dict.fromkeys(without):
        out[f"no-{name}"] = replace(COMPONENTS[name].off(config), name=f"{config.name}-no-{name}")
    return out


@dataclass
class AblationResult:
    """Where the ablation wrote its runs and comparison, and the per-variant summary rows."""

    out_dir: Path
    html: Path
    rows: list[dict[str, Any]]


def run_ablation(config: RunConfig, out_dir: str | Path, *, without: Sequence[str] | None = None,
                 resume: bool = False, console: Console | None = None) -> AblationResult:
    """Run every variant (sequentially, each resumable) and write the comparison.

    The ablation holds a lease on ``out_dir`` from start to end (and each variant its run's lease),
    so a second ``selfgym ablate`` of the same folder stops at once with the holder named.

    Raises:
        RunLockedError: another live process runs this ablation.
    """
    from selfgym.run.loop import train
    from selfgym.run.report import write_report

    console = console or Console(highlight=False, soft_wrap=True)
    out_dir = Path(out_dir)
    planned = variants(config, without)
    with RunLease(out_dir, "ablation", what=f"ablation {config.name!r}"):
        for key, variant in planned.items():
            console.print(f"== ablation variant {key} ({variant.name}) ==", markup=False)
            result = train(variant, out_dir / key, resume=resume, console=console)
            write_report(out_dir / key, result.run_id)
        rows = [summarise_run(out_dir / key, variant.name, key) for key, variant in planned.items()]
        _add_paired(rows)
        return AblationResult(out_dir=out_dir, html=write_comparison(out_dir, rows), rows=rows)


def summarise_run(run_dir: Path, run_id: str, variant: str) -> dict[str, Any]:
    """One comparison row from a finished run's store."""
    store = Store(run_dir)
    evals = sorted((e for e in store.evals(run_id) if e["iteration"] is not None), key=lambda e: e["iteration"])
    series: dict[str, dict[int, float]] = {}
    for iteration, key, value in store.metrics(run_id):
        series.setdefault(key, {})[iteration] = value
    store.close()
    train_success = list(series.get("train/success", {}).values())
    return {
        "variant": variant, "run_id": run_id, "run_dir": str(run_dir),
        "heldout": {e["iteration"]: {k: e["metrics"][k] for k in ("success_rate", "ci95")} for e in evals},
        "before": evals[0]["metrics"]["success_rate"] if evals else None,
        "after": evals[-1]["metrics"]["success_rate"] if evals else None,
        "after_ci95": evals[-1]["metrics"]["ci95"] if evals else None,
        "outcomes": evals[-1]["metrics"].get("outcomes", {}) if evals else {},
        "train_success": float(np.mean(train_success)) if train_success else None,
        "tokens": sum(sum(v.values()) for k, v in series.items() if k.startswith("tokens/")),
        "wall_s": sum(series.get("time/iteration_s", {}).values()) + sum(series.get("time/eval_s", {}).values()),
    }


def _add_paired(rows: list[dict[str, Any]]) -> None:
    """Paired difference of each variant's final held-out success against ``full`` (same tasks)."""
    full = rows[0]["outcomes"]
    for row in rows:
        row["vs_full"], row["vs_full_ci95"], row["paired_tasks"] = paired_difference(full, row["outcomes"])


def _plot(rows: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from selfgym.run.report import figure_png

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for row in rows:
        its = sorted(row["heldout"])
        ys = [row["heldout"][i]["success_rate"] for i in its]
        ax.plot(its, ys, marker="o", label=row["variant"])
        ax.fill_between(its, [row["heldout"][i]["ci95"][0] for i in its],
                        [row["heldout"][i]["ci95"][1] for i in its], alpha=0.12)
    ax.set(xlabel="iteration", ylabel="held-out success", ylim=(-0.02, 1.02), title="Ablation: held-out success (95% CI)")
    ax.legend(fontsize=8)
    png = figure_png(fig)
    plt.close(fig)
    return png


def write_comparison(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``ablation.json``, ``ablation.png`` and ``ablation.html`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps(rows, indent=2, default=str))
    png = _plot(rows)
    (out_dir / "ablation.png").write_bytes(png)
    esc = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>selfgym ablation</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>",
             "<h1>Ablation</h1><p>Same seed, iterations, tasks, attempts and held-out tasks in every variant; "
             "only the named component is off.</p><table><tr><th>variant</th><th>held-out before</th>"
             "<th>held-out after [95% CI]</th><th>after − full (paired) [95% CI]</th><th>train success</th>"
             "<th>tokens</th><th>wall s</th><th>report</th></tr>"]
    for row in rows:
        link = f"{row['variant']}/report/index.html"
        parts.append(
            f"<tr><td>{esc(row['variant'])}</td><td>{fmt_score(row['before'])}</td>"
            f"<td>{fmt_score(row['after'], row['after_ci95'])}</td><td>{fmt_score(row['vs_full'], row['vs_full_ci95'], '+')}</td>"
            f"<td>{fmt_score(row['train_success'])}</td><td>{row['tokens']:.0f}</td><td>{row['wall_s']:.0f}</td>"
            f"<td><a href='{esc(link)}'>{esc(row['run_id'])}</a></td></tr>")
    parts.append("</table><h2>Held-out success per iteration</h2>"
                 f"<img id='plot-ablation' alt='ablation' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    parts.append("</body></html>")
    path = out_dir / "ablation.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
