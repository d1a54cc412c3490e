"""``selfgym report RUN``: a self-contained HTML report with PNG plots, and TensorBoard scalars.

The report reads only the run store, so it works for any run, finished or not. Plots are drawn for
what the run recorded; metric keys are namespaced (``train/success``, ``time/rollout_s``,
``curriculum/p/<arm>``, ``teacher/accepted``, ``skills/size``, ...), and each panel gathers one
namespace. Held-out evaluations come from the store's ``eval_results``.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from selfgym.stats import paired_difference
from selfgym.store import Store

__all__ = ["PANELS", "figure_png", "fmt_score", "transfer_summary", "write_report"]

# (file stem, title, metric prefixes, y label)
PANELS: list[tuple[str, str, tuple[str, ...], str]] = [
    ("train_success", "Train success rate", ("train/success",), "success rate"),
    ("episodes", "Rollout episodes ended stuck", ("episodes/",), "episodes"),
    ("curriculum", "Curriculum arm probabilities", ("curriculum/p/",), "probability"),
    ("teacher", "Teacher proposals", ("teacher/",), "count"),
    ("skills", "Skill library", ("skills/",), "count"),
    ("reflections", "Reflections", ("reflections/",), "count"),
    ("losses", "Trainer losses", ("losses/",), "value"),
    ("tokens", "Tokens per stage", ("tokens/",), "tokens"),
    ("throughput", "Rollout throughput", ("rollout/",), "per second"),
    ("time", "Wall time per stage", ("time/",), "seconds"),
]


def _series(store: Store, run_id: str) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for iteration, key, value in store.metrics(run_id):
        series[key].append((iteration, value))
    return series


def figure_png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _heldout_plot(evals: list[dict[str, Any]]) -> Any | None:
    import matplotlib.pyplot as plt

    points = [(e["iteration"], e["metrics"]) for e in evals if e["iteration"] is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    by_env: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for e in evals:
        if e["iteration"] is not None:
            by_env[f"{e['env_id']} ({e['split']})"].append((e["iteration"], e["metrics"]))
    for label, rows in by_env.items():
        rows.sort(key=lambda r: r[0])
        xs = [r[0] for r in rows]
        ys = [r[1]["success_rate"] for r in rows]
        lo = [r[1]["ci95"][0] for r in rows]
        hi = [r[1]["ci95"][1] for r in rows]
        ax.plot(xs, ys, marker="o", label=label)
        ax.fill_between(xs, lo, hi, alpha=0.2)
    ax.set(xlabel="iteration", ylabel="success rate", ylim=(-0.02, 1.02), title="Held-out success (95% CI)")
    _whole_iterations(ax)
    ax.legend(fontsize=8)
    return fig


def _components_off(config: dict[str, Any]) -> dict[str, str]:
    """The panels of the loop's components a run's config switched off (stem -> why), not drawn."""
    off = {}
    if config.get("reflections", {}).get("enabled") is False:
        off["reflections"] = "reflections.enabled = false"
    if config.get("teacher", {}).get("enabled") is False:
        off["teacher"] = "teacher.enabled = false"
    if config.get("skills", {}).get("mode") == "off":
        off["skills"] = 'skills.mode = "off"'
    if config.get("trainer", {}).get("algorithm") == "none":
        off["losses"] = 'trainer.algorithm = "none"'
    return off


def _whole_iterations(ax: Any) -> None:
    """Ticks at whole iterations only (a two-iteration run has no iteration 0.25)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _panel_plot(title: str, ylabel: str, series: dict[str, list[tuple[int, float]]]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=key)
    ax.set(xlabel="iteration", ylabel=ylabel, title=title)
    _whole_iterations(ax)
    if len(series) <= 12:
        ax.legend(fontsize=7)
    return fig


def _before_after(evals: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """Rows (group, first, last, change) from the first and last held-out evaluation of each env."""
    by_env: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in evals:
        by_env[e["env_id"]].append(e)
    rows = []
    for env_id, runs in by_env.items():
        first, last = runs[0]["metrics"], runs[-1]["metrics"]
        groups = [(env_id, first, last)] + [
            (f"{env_id} / {fam}", first["by_family"].get(fam, {}), scores)
            for fam, scores in last.get("by_family", {}).items()
        ]
        for name, a, b in groups:
            if "success_rate" not in a or "success_rate" not in b:
                continue
            fmt = "{:.3f} [{:.3f}, {:.3f}]"
            rows.append((name, fmt.format(a["success_rate"], *a["ci95"]), fmt.format(b["success_rate"], *b["ci95"]),
                         f"{b['success_rate'] - a['success_rate']:+.3f}"))
    return rows


def write_report(run_dir: str | Path, run_id: str | None = None, *, tensorboard: bool = True,
                 viewer: str | None = None) -> Path:
    """Write ``<run>/report/index.html`` (+ PNGs, + TensorBoard scalars); return the HTML path.

    Args:
        viewer: base URL of a ``selfgym view`` to link the run's pages in (default: a live viewer
            registered as serving this run directory, if any; none, no links).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    store = Store(run_dir)
    runs = store.runs(include_eval=False) or store.runs()  # a loop run's evaluations are part of its report
    if run_id is None:
        if not runs:
            raise ValueError(f"{store.path} holds no run")
        run_id = runs[-1]
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    series = _series(store, run_id)
    evals = store.evals(run_id)
    off = _components_off((store.run(run_id) or {}).get("config", {}))
    figures: list[tuple[str, str, bytes]] = []
    held = _heldout_plot(evals)
    if held is not None:
        figures.append(("heldout", "Held-out success", figure_png(held)))
        plt.close(held)
    for stem, title, prefixes, ylabel in PANELS:
        chosen = {k: v for k, v in series.items() if k.startswith(prefixes)}
        if chosen and stem not in off:
            fig = _panel_plot(title, ylabel, chosen)
            figures.append((stem, title, figure_png(fig)))
            plt.close(fig)
    for stem, _, png in figures:
        (out / f"{stem}.png").write_bytes(png)
    html_path = out / "index.html"
    html_path.write_text(_html(run_id, store, evals, figures, off, _viewer(store.path, run_id, viewer)),
                         encoding="utf-8")
    if tensorboard:
        _write_tensorboard(out / "tensorboard", series, evals)
    store.close()
    return html_path


def transfer_summary(transfer_evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per transfer set: first-attempt success and success within ``max_attempts``, first and last
    evaluation with their CIs, and the paired change between them."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(transfer_evals, key=lambda e: e["iteration"] if e["iteration"] is not None else -1):
        by_name.setdefault(e["split"].removeprefix("transfer:"), []).append(e)
    rows = []
    for name, found in by_name.items():
        first, last = found[0], found[-1]
        row: dict[str, Any] = {"name": name, "n_tasks": last["metrics"]["n_tasks"],
                               "max_attempts": last["metrics"].get("max_attempts", 1),
                               "before_iteration": first["iteration"], "after_iteration": last["iteration"]}
        for key, pick in (("first", lambda m: m["first_attempt"]), ("within", lambda m: m)):
            b, a = pick(first["metrics"]), pick(last["metrics"])
            change, ci, n = paired_difference(b["outcomes"], a["outcomes"]) if last is not first else (None, None, 0)
            row[key] = {"before": b["success_rate"], "before_ci95": b["ci95"], "after": a["success_rate"],
                        "after_ci95": a["ci95"], "change": change, "change_ci95": ci, "paired_tasks": n,
                        "before_solved": sum(any(o) for o in b["outcomes"].values()),
                        "after_solved": sum(any(o) for o in a["outcomes"].values())}
        rows.append(row)
    return rows


def _transfer_html(rows: list[dict[str, Any]]) -> list[str]:
    esc = html.escape
    parts = ["<h2>Transfer (task sets never trained on)</h2><table id='transfer'><tr><th>set</th><th>tasks</th>"
             "<th>measure</th><th>before [95% CI]</th><th>after [95% CI]</th><th>paired change [95% CI]</th></tr>"]
    for row in rows:
        for key, label in (("first", "first attempt"), ("within", f"within {row['max_attempts']} attempts")):
            m = row[key]
            parts.append(
                f"<tr><td>{esc(row['name'])}</td><td>{row['n_tasks']}</td><td>{label}</td>"
                f"<td>{fmt_score(m['before'], m['before_ci95'])} ({m['before_solved']})</td>"
                f"<td>{fmt_score(m['after'], m['after_ci95'])} ({m['after_solved']})</td>"
                f"<td>{fmt_score(m['change'], m['change_ci95'], '+')}</td></tr>")
    parts.append("</table><p>In brackets after a rate: tasks solved. Before: the evaluation before training; "
                 "after: the one after the last iteration, on the same tasks.</p>")
    return parts


def fmt_score(value: float | None, ci: Any = None, sign: str = "") -> str:
    """``0.625 [0.417, 0.833]`` (``sign="+"`` for differences); ``-`` when there is no value."""
    if value is None:
        return "-"
    return f"{value:{sign}.3f}" + (f" [{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]" if ci else "")


def _viewer(store_path: Path, run_id: str, forced: str | None) -> dict[str, Any] | None:
    """The viewer the report links to: ``forced`` (a base URL), else a live registered viewer that
    serves this store; its base URL, what it is, and the run's deep links."""
    from selfgym.view.registry import find_viewer, run_links

    found = find_viewer(store_path)
    if forced:  # the store's name there: the registered one, else the name a viewer of this run dir gives it
        name = found[1] if found else "".join(c if c.isalnum() or c in "-_." else "_"
                                              for c in store_path.parent.resolve().name) or "run"
        return {"url": forced.rstrip("/"), "what": "given with --viewer", "links": run_links(forced, name, run_id)}
    if found is None:
        return None
    entry, name = found
    return {"url": entry.url, "what": f"selfgym view, pid {entry.pid}", "links": run_links(entry.url, name, run_id)}


def _viewer_html(viewer: dict[str, Any]) -> str:
    esc = html.escape
    links = " · ".join(f"<a class='viewer-link' href='{esc(url)}'>{esc(label)}</a>"
                       for label, url in viewer["links"].items())
    return (f"<p id='viewer'>Live in the viewer at <a href='{esc(viewer['url'])}'>{esc(viewer['url'])}</a> "
            f"({esc(viewer['what'])}): {links}</p>")


def _html(run_id: str, store: Store, evals: list[dict[str, Any]], figures: list[tuple[str, str, bytes]],
          off: dict[str, str], viewer: dict[str, Any] | None = None) -> str:
    run = store.run(run_id) or {}
    n_traj = store.count_trajectories(run_id=run_id)
    n_ok = store.count_trajectories(run_id=run_id, success=True)
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>selfgym report: {esc(run_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>",
        f"<h1>selfgym run <code>{esc(run_id)}</code></h1>",
        f"<p>{n_traj} trajectories, {n_ok} successful; {len(evals)} held-out evaluations; "
        f"{len(store.checkpoints(run_id))} checkpoints.</p>",
    ]
    if viewer is not None:
        parts.append(_viewer_html(viewer))
    rows = _before_after(evals)
    if rows:
        parts.append("<h2>Before / after (held-out, first vs last evaluation)</h2><table>"
                     "<tr><th>group</th><th>first</th><th>last</th><th>change</th></tr>")
        parts += [f"<tr><td>{esc(a)}</td><td>{b}</td><td>{c}</td><td>{d}</td></tr>" for a, b, c, d in rows]
        parts.append("</table>")
    transfer = transfer_summary(store.evals(run_id, transfer=True))
    if transfer:
        parts += _transfer_html(transfer)
    for stem, title, png in figures:
        data = base64.b64encode(png).decode()
        parts.append(f"<h2>{esc(title)}</h2><img id='plot-{stem}' alt='{esc(title)}' "
                     f"src='data:image/png;base64,{data}'>")
    if off:
        titles = {stem: title for stem, title, _, _ in PANELS}
        parts.append("<p id='off'>Off in this run (no plot): " + "; ".join(
            f"{esc(titles[stem])} ({esc(why)})" for stem, why in off.items()) + ".</p>")
    if run.get("config"):
        parts.append("<h2>Config</h2><table>")
        parts += [f"<tr><th>{esc(key)}</th><td><code>{esc(value)}</code></td></tr>"
                  for key, value in _flat(run["config"])]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _flat(config: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested config as ``section.key`` rows, values as TOML would spell them."""
    import json

    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", json.dumps(value)))
    return rows


def _write_tensorboard(folder: Path, series: dict[str, list[tuple[int, float]]], evals: list[dict[str, Any]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder))
    for key, points in series.items():
        for iteration, value in points:
            writer.add_scalar(key, value, iteration)
    for e in evals:
        if e["iteration"] is not None:
            writer.add_scalar(f"eval/{e['env_id']}/success_rate", e["metrics"]["success_rate"], e["iteration"])
    writer.close()
