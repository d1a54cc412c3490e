"""The seed methods side by side at one budget, and the transfer figures: writes ``docs/results.md``.

Every method is a normal gym-loop run (``selfgym.run.loop.train``) of one base config with a few
keys changed, so the budget is matched by construction: the same seed, iterations, tasks per
iteration, attempts per task (group size), sampling, model and evaluation sets. Training is on
procedural Code-v0 families only (``TRAIN_FAMILIES``); each run is scored on

* held-out tasks of the trained families (the loop's own held-out evaluation, greedy);
* ``unseen``: held-out tasks of families that are *not* in the training mix, and
* ``humaneval``: the 164 HumanEval problems (never trained on, never in a teacher prompt, and in
  the teacher's decontamination set),

the last two as ``[[eval.transfer]]`` sets: one greedy episode per task with up to 3 submissions and
the tests' feedback between them, reported as first-attempt success and success within 3 attempts.
HumanEval costs the most (164 tasks, 384 tokens, 3 attempts), so by default (``--humaneval best``) it
scores the untrained model and the one trained method with the best procedural validation figures
(held-out plus unseen-family tasks solved); every run keeps HumanEval out of its teacher's tasks
(``eval.protect``) whether it is scored or not. ``tt-si`` (test-time self-improvement) trains nothing:
the untrained model retries the held-out and unseen tasks it failed with its own reflections.

The untrained model is evaluated once (the ``base`` run: the loop's iteration-0 evaluations, no training);
the other runs skip their identical "before" evaluation and are compared with it task by task
(paired differences with bootstrap 95% CIs). Configs are chosen on these numbers, never tuned on
HumanEval's per-task outcomes.

Run: ``python bench/methods.py [--budget quick|standard] [--methods rft,teacher,...] [--out runs/methods]``
then it writes ``docs/results.md`` and ``docs/results.png`` (``--results`` moves them). Runs resume:
a killed bench continues where it stopped. ``--seed 0,1`` runs every method once per seed and pools
the table over them (each task under each seed one outcome; HumanEval and TT-SI on the first seed). ``--budget quick`` takes about 2-3 hours on 2 CPU cores,
``standard`` most of a day; ``--model tiny --budget smoke`` checks the plumbing in a few minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from selfgym.config import from_dict
from selfgym.run.loop import train
from selfgym.run.loopconfig import RunConfig
from selfgym.run.report import write_report
from selfgym.stats import bootstrap_ci, paired_difference
from selfgym.store import Store

TRAIN_FAMILIES = ["arithmetic", "strings", "lists", "structures"]
UNSEEN_FAMILIES = ["parsing", "recursion", "off_by_one"]
SYSTEM_PROMPT = "You write correct, minimal Python. Reply with one ```python code block and nothing else."

BUDGETS: dict[str, dict[str, Any]] = {
    # iterations, tasks per iteration, attempts per task, new tokens a turn, held-out and unseen tasks
    "smoke": {"iterations": 1, "tasks": 2, "group": 2, "max_tokens": 8, "heldout": 2, "unseen": 2, "humaneval": 2,
              "humaneval_tokens": 8, "humaneval_dtype": "bfloat16"},
    "quick": {"iterations": 2, "tasks": 12, "group": 4, "max_tokens": 160, "heldout": 24, "unseen": 24,
              "humaneval": 164, "humaneval_tokens": 384, "humaneval_dtype": "bfloat16"},
    "standard": {"iterations": 4, "tasks": 16, "group": 4, "max_tokens": 192, "heldout": 48, "unseen": 60,
                 "humaneval": 164, "humaneval_tokens": 384, "humaneval_dtype": "bfloat16"},
}

# name -> (what it is, the keys it changes in the base config)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("the untrained model (no training, no memory)", {"trainer": {"algorithm": "none"}}),
    "rft": ("ReST-EM: fine-tune on the agent's own successes", {"trainer": {"algorithm": "rft"}}),
    "rft-corrections": ("RFT with 3 attempts; a success after test feedback also trains the first attempt "
                        "(RISE / SCoRe-style corrections)",
                        {"env": {"kwargs": {"max_attempts": 3}},
                         "trainer": {"algorithm": "rft", "rft": {"corrections": True}}}),
    "reflexion": ("Reflexion: lessons from failures in the prompt, 2 attempts, no weight update",
                  {"env": {"kwargs": {"max_attempts": 2}}, "reflections": {"enabled": True, "scope": "family"},
                   "trainer": {"algorithm": "none"}}),
    "skills": ("Voyager / SAGE: a verified skill library in the prompt and the sandbox, no weight update",
               {"skills": {"mode": "read-write", "k": 3, "max_candidates": 8}, "trainer": {"algorithm": "none"}}),
    "teacher": ("Self-Challenging teacher (LLM proposals, mutation fallback) + RFT",
                {"teacher": {"enabled": True, "proposals_per_iteration": 8, "solver_attempts": 4, "reward": "band"},
                 "trainer": {"algorithm": "rft"}}),
    "score": ("SCoRe-style two-attempt RL: GRPO with turn credit over 2 attempts",
              {"env": {"kwargs": {"max_attempts": 2}}, "agent": {"sampling": {"temperature": 0.9}},
               "trainer": {"algorithm": "grpo", "grpo": {"turn_credit": True}}}),
    "loop-grpo": ("LOOP-style GRPO with a leave-one-out baseline",
                  {"trainer": {"algorithm": "grpo", "grpo": {"advantage": "loo"}}}),
    "tt-si": ("test-time self-improvement: the untrained model reflects on a failed task and retries it with its "
              "lessons, twice (no weight update; lessons live only in the evaluation)", {"trainer": {"algorithm": "none"}}),
    "full": ("the full loop: RFT with corrections + teacher + reflections + skills",
             {"env": {"kwargs": {"max_attempts": 3}},
              "teacher": {"enabled": True, "proposals_per_iteration": 8, "solver_attempts": 4, "reward": "band"},
              "reflections": {"enabled": True, "scope": "family"},
              "skills": {"mode": "read-write", "k": 3, "max_candidates": 8},
              "trainer": {"algorithm": "rft", "rft": {"corrections": True}}}),
}
# (a, b, what the paired difference a - b answers)
CONTRASTS = [("full", "rft", "full loop vs RFT only"),
             ("full", "rft-corrections", "full loop vs the loop without teacher and memory")]


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def base_config(budget: dict[str, int], model: str, seed: int) -> dict[str, Any]:
    """The config every method starts from (as TOML would give it)."""
    return {
        "name": "base", "seed": seed, "iterations": budget["iterations"],
        "env": {"id": "selfgym/Code-v0", "families": TRAIN_FAMILIES, "difficulties": [0.0, 0.25, 0.5],
                "kwargs": {"max_attempts": 1}},
        "policy": {"model": model},
        "agent": {"system_prompt": SYSTEM_PROMPT, "sampling": {"max_tokens": budget["max_tokens"], "temperature": 0.7}},
        "rollout": {"tasks_per_iteration": budget["tasks"], "group_size": budget["group"], "max_concurrent": 64},
        "trainer": {"rft": {"max_per_task": 2, "train": {"learning_rate": 2e-4, "batch_size": 8,
                                                         "micro_batch_size": 4, "epochs": 1}},
                    "grpo": {"train": {"learning_rate": 5e-5, "batch_size": 8, "micro_batch_size": 4}}},
        "eval": {"every": 0, "n_tasks": budget["heldout"], "difficulties": [0.0, 0.25, 0.5],
                 "transfer": [{"name": "unseen", "families": UNSEEN_FAMILIES, "n_tasks": budget["unseen"],
                               "max_attempts": 3}],
                 "protect": ["humaneval"]},  # kept out of teaching in every run, scored only where chosen
    }


def method_config(name: str, budget: dict[str, int], model: str, seed: int, *, humaneval: bool = False) -> RunConfig:
    """``name``'s run config; ``humaneval`` adds the HumanEval transfer set to its evaluations."""
    data = _merge(base_config(budget, model, seed), METHODS[name][1])
    data["name"] = name
    if name != "base":  # the "before" evaluation is the base run's
        data["eval"]["before"] = False
    if humaneval:  # bfloat16 weights: 2-3x faster at the eval's batch of 64 on a CPU; the same for every method
        data["policy"]["dtype"] = budget["humaneval_dtype"]
        data["eval"]["transfer"].append({"name": "humaneval", "tasks": "humaneval", "n_tasks": budget["humaneval"],
                                         "max_attempts": 3, "max_tokens": budget["humaneval_tokens"]})
    return from_dict(RunConfig, data, where=f"method {name}")


def evaluate_at(config: RunConfig, run_dir: Path, iteration: int, *, heldout: bool) -> None:
    """The loop's evaluations of ``iteration`` on the run's latest weights and memory: held-out when
    ``heldout``, and every transfer set of ``config`` not yet scored (a finished set is skipped)."""
    from rich.console import Console

    from selfgym.lease import RunLease
    from selfgym.run import stages
    from selfgym.run.assemble import open_run

    with RunLease(run_dir, config.name):
        run = open_run(config, run_dir, Console(highlight=False, soft_wrap=True))
        try:
            if heldout:
                stages.evaluate_heldout(run, iteration)
            stages.evaluate_transfer(run, iteration)
        finally:
            run.env.close()


TT_SI_ROUNDS = 2  # the plain attempt and two reflect-and-retry rounds: 3 attempts, as the "within 3" columns


def evaluate_test_time(config: RunConfig, run_dir: Path, n_unseen: int) -> dict[str, Any]:
    """TT-SI on the untrained model over the held-out and the unseen-family tasks the loop runs score
    (the same tasks, greedy, one submission an episode): a plain attempt, then ``TT_SI_ROUNDS`` rounds
    of reflect-and-retry on the unsolved ones. Kept in ``run_dir/tt-si.json`` (a rerun reads it back)
    with per-task outcomes plain and with the retries; the trajectories go to the run's store."""
    import dataclasses

    from rich.console import Console

    from selfgym.lease import RunLease
    from selfgym.run import stages
    from selfgym.run.assemble import open_run
    from selfgym.run.evaluate import first_attempt_scores
    from selfgym.run.rollout import RolloutConfig
    from selfgym.run.testtime import RetryConfig, evaluate_with_retries
    from selfgym.seeds import derive_seed
    from selfgym.stats import bootstrap_ci

    path = run_dir / "tt-si.json"
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    ev = config.eval
    with RunLease(run_dir, config.name):
        run = open_run(config, run_dir, Console(highlight=False, soft_wrap=True))
        agent = run.agent.with_config(sampling=dataclasses.replace(run.agent.config.sampling, temperature=0.0))
        sets = {"heldout": stages.eval_tasks(run.eval_source, ev.split, ev.n_tasks, TRAIN_FAMILIES, ev.difficulties),
                "unseen": stages.eval_tasks(run.source, "heldout", n_unseen, UNSEEN_FAMILIES, [])}
        out: dict[str, Any] = {"rounds": TT_SI_ROUNDS}
        try:
            for name, tasks in sets.items():
                t0 = time.perf_counter()
                rollout = RolloutConfig(split="heldout", seed=derive_seed(config.seed, "tt-si", name),
                                        max_concurrent=config.rollout.max_concurrent, progress=False)
                result = evaluate_with_retries(run.make_eval_env, agent, tasks, retry=RetryConfig(rounds=TT_SI_ROUNDS),
                                               rollout=rollout, store=run.store, run_id=f"{run.run_id}/{name}")
                plain = first_attempt_scores(t for t in result.trajectories if t.info.get("phase") == "plain")
                solved: dict[str, list[bool]] = {}
                for traj in result.trajectories:
                    if not traj.aborted:
                        solved[traj.task_id] = [bool(solved.get(traj.task_id, [False])[0] or traj.success)]
                flat = [float(o[0]) for o in solved.values()]
                out[name] = {"plain": plain, "with_retries": {"success_rate": float(np.mean(flat)),
                                                              "ci95": bootstrap_ci(flat), "outcomes": solved},
                             "rounds": result.rounds, "seconds": time.perf_counter() - t0}
                print(f"  tt-si {name}: plain {plain['success_rate']:.3f}, with retries {np.mean(flat):.3f} "
                      f"({time.perf_counter() - t0:.0f}s)", flush=True)
        finally:
            run.env.close()
    path.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


def validation_score(row: dict[str, Any]) -> float:
    """How a trained method is chosen for HumanEval, on procedural tasks only: held-out tasks of the
    training families solved plus unseen-family tasks solved within 3 attempts."""
    return float(sum(sum(any(o) for o in row["evals"][s]["outcomes"].values())
                     for s in ("heldout", "unseen") if s in row["evals"]))


def humaneval_methods(choice: str, names: list[str], rows: dict[str, dict[str, Any]]) -> list[str]:
    """Which runs get the HumanEval evaluation: ``all``, ``none``, ``best`` (base and the trained
    method with the best ``validation_score``, ties to the earlier-listed) or a comma list."""
    if choice == "all":
        return list(names)
    if choice == "none":
        return []
    if choice == "best":
        trained = [n for n in names if n not in ("base", "tt-si")]
        best = max(trained, key=lambda n: validation_score(rows[n]), default=None)
        return ["base"] + ([best] if best else [])
    return [n.strip() for n in choice.split(",") if n.strip()]


# ----------------------------------------------------------------------------------- summary
def _evals(store: Store, run_id: str, iteration: int | None = None) -> dict[str, dict[str, Any]]:
    """``{"heldout" | transfer name: metrics}`` of the run's evaluation at ``iteration`` (default: last)."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for e in store.evals(run_id, transfer=None):
        it = e["iteration"] if e["iteration"] is not None else -1
        if iteration is not None and it != iteration:
            continue
        name = e["split"].removeprefix("transfer:") if e["split"].startswith("transfer:") else "heldout"
        if name not in found or it >= found[name][0]:
            found[name] = (it, e["metrics"])
    return {name: metrics for name, (_, metrics) in found.items()}


def summarise(out_dir: Path, name: str) -> dict[str, Any]:
    store = Store(out_dir / name)
    series: dict[str, dict[int, float]] = {}
    for iteration, key, value in store.metrics(name):
        series.setdefault(key, {})[iteration] = value
    row = {"method": name, "what": METHODS[name][0], "evals": _evals(store, name, 0 if name == "base" else None),
           "tokens": sum(sum(v.values()) for k, v in series.items() if k.startswith("tokens/") and "transfer" not in k),
           "train_s": sum(series.get("time/iteration_s", {}).values()),
           "teacher": {k.removeprefix("teacher/"): dict(v) for k, v in series.items() if k.startswith("teacher/")},
           "skills": {k.removeprefix("skills/"): dict(v) for k, v in series.items() if k.startswith("skills/")}}
    if name != "base":
        row["train_success"] = float(np.mean(list(series.get("train/success", {}).values()) or [np.nan]))
    store.close()
    return row


def _pool_metrics(parts: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """One set's metrics over seeds: each (task, seed) is one outcome, keyed ``<task>@<seed>`` so
    paired differences pair the same task under the same seed."""
    outcomes = {f"{task}@{seed}": o for seed, m in parts for task, o in m["outcomes"].items()}
    flat = [float(any(o)) for o in outcomes.values()]
    pooled: dict[str, Any] = {"outcomes": outcomes, "success_rate": float(np.mean(flat)) if flat else float("nan"),
                              "ci95": bootstrap_ci(flat)}
    if all("first_attempt" in m for _, m in parts):
        pooled["first_attempt"] = _pool_metrics([(seed, m["first_attempt"]) for seed, m in parts])
    return pooled


def pool_seeds(rows: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """One method's row over its seeds: evaluation sets pooled over the seeds that scored them (HumanEval
    only on the first), tokens and training success averaged per seed, minutes the first seed's (wall
    time depends on what else ran on the machine); one seed's row as is."""
    if len(rows) == 1:
        return {**rows[0][1], "per_seed": rows}
    first = rows[0][1]
    sets = {name for _, row in rows for name in row["evals"]}
    mean = lambda key: float(np.mean([row.get(key, np.nan) for _, row in rows]))  # noqa: E731
    pooled = {"method": first["method"], "what": first["what"], "per_seed": rows, "tokens": mean("tokens"),
              "train_s": first["train_s"], "teacher": first["teacher"], "skills": first["skills"],
              "evals": {name: _pool_metrics([(seed, row["evals"][name]) for seed, row in rows if name in row["evals"]])
                        for name in sets}}
    if "train_success" in first:
        pooled["train_success"] = mean("train_success")
    return pooled


def humaneval_distances(run_dirs: dict[str, Path]) -> dict[str, dict[str, float]]:
    """How close each run's accepted teacher tasks come to any HumanEval problem: the largest word
    5-gram overlap (the decontamination rule rejects above 0.4) and the largest cosine of
    all-MiniLM-L6-v2 embeddings, measured afresh on the stored prompts (runs without one are left out).
    HumanEval is indexed and encoded once for all the runs."""
    import selfgym
    from selfgym.decontam import Decontaminator, SentenceEncoder, task_text

    generated: dict[str, list[Any]] = {}
    for name, run_dir in run_dirs.items():
        with Store(run_dir) as store:
            if tasks := store.tasks(split="generated"):
                generated[name] = tasks
    if not generated:
        return {}
    humaneval = list(selfgym.make_task_source("humaneval").tasks("heldout"))
    index, encoder = Decontaminator(humaneval), SentenceEncoder()
    protected = encoder.encode([task_text(t) for t in humaneval])
    out = {}
    for name, tasks in generated.items():
        overlaps = [match.overlap if (match := index.closest(task_text(t))) else 0.0 for t in tasks]
        cosines = encoder.encode([task_text(t) for t in tasks]) @ protected.T
        out[name] = {"tasks": float(len(tasks)), "max_overlap": max(overlaps), "max_cosine": float(cosines.max())}
    return out


def _outcomes(row: dict[str, Any], set_name: str, first: bool) -> dict[str, list[bool]]:
    metrics = row["evals"].get(set_name)
    if metrics is None:
        return {}
    return metrics["first_attempt"]["outcomes"] if first else metrics["outcomes"]


def _cell(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "-"
    lo, hi = metrics["ci95"]
    solved, total = _solved(metrics)
    return f"{metrics['success_rate']:.3f} [{lo:.2f}, {hi:.2f}] ({solved}/{total})"


def _diff(a: dict[str, list[bool]], b: dict[str, list[bool]]) -> str:
    change, ci, n = paired_difference(b, a)
    return "-" if change is None or ci is None else f"{change:+.3f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _vs(row: dict[str, Any], base: dict[str, Any] | None, set_name: str, first: bool) -> str:
    if base is None:
        return "-"
    return _diff(_outcomes(row, set_name, first), _outcomes(base, set_name, first))


CHOICE_NOTE = ("the untrained model and the trained method with the most held-out plus unseen-family tasks "
               "solved: configs are chosen on procedural tasks, HumanEval only scores the choice")


def _solved(metrics: dict[str, Any] | None) -> tuple[int, int]:
    outcomes = (metrics or {}).get("outcomes", {})
    return sum(any(o) for o in outcomes.values()), len(outcomes)


def reading(rows: list[dict[str, Any]], base: dict[str, Any]) -> list[str]:
    """What the table says, as bullets: which changes against the untrained model have a CI clear of
    zero, transfer to the unseen families, and HumanEval against the 2x goal."""
    trained = [r for r in rows if r is not base]
    sides: dict[str, list[str]] = {"above": [], "below": [], "spans": []}
    for row in trained:
        change, ci, _ = paired_difference(_outcomes(base, "heldout", False), _outcomes(row, "heldout", False))
        if change is None or ci is None:
            continue
        side = "above" if ci[0] > 0 else "below" if ci[1] < 0 else "spans"
        sides[side].append(f"{row['method']} ({change:+.3f})")
    out = [f"- Held-out, paired against the untrained model: 95% CI above zero for "
           f"{', '.join(sides['above']) or 'no method'}; below zero for {', '.join(sides['below']) or 'no method'}; "
           f"touching or spanning zero for {', '.join(sides['spans']) or 'no method'}."]
    unseen = [(r["method"], _solved((r["evals"].get("unseen") or {}).get("first_attempt"))) for r in rows]
    unseen = [(name, solved) for name, solved in unseen if solved[1]]
    if unseen:
        top = max(solved[0] for _, solved in unseen)
        leaders = [name for name, solved in unseen if solved[0] == top]
        out.append(f"- Unseen families (first attempt): at most {top}/{unseen[0][1][1]} ({', '.join(leaders)}).")
    base_he = _solved((base["evals"].get("humaneval") or {}).get("first_attempt"))
    for row in trained:
        he = row["evals"].get("humaneval")
        if he is None or not base_he[1]:
            continue
        first, within = _solved(he.get("first_attempt")), _solved(he)
        goal = 2 * base_he[0]
        verdict = "met" if first[0] >= goal else f"missed by {goal - first[0]} task{'s' if goal - first[0] != 1 else ''}"
        out.append(f"- HumanEval first attempt: {row['method']} {first[0]}/{first[1]} against the untrained model's "
                   f"{base_he[0]}/{base_he[1]} (goal 2x, {goal}: {verdict}); within 3 attempts {within[0]} against "
                   f"{_solved(base['evals'].get('humaneval'))[0]}.")
    return out


def _seeds_note(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    return (f"seeds {', '.join(map(str, seeds))} pooled: each task under each seed is one outcome, paired with the "
            "same task under the same seed; tokens are per seed; minutes, HumanEval, TT-SI, teacher and skills "
            f"figures are seed {seeds[0]}'s")


def _choice_note(humaneval: str) -> str:
    """Why HumanEval scored the methods it did (the bench's ``--humaneval``)."""
    return {"best": CHOICE_NOTE, "all": "every method", "none": "`--humaneval none`: not scored in this run"
            }.get(humaneval, "the methods named by `--humaneval`")


def write_results(rows: list[dict[str, Any]], path: Path, *, budget_name: str, budget: dict[str, int],
                  model: str, seeds: list[int], command: str, seconds: float, chosen: list[str],
                  test_time: dict[str, Any] | None = None, humaneval: str = "best",
                  distances: dict[str, dict[str, float]] | None = None) -> None:
    distances = distances or {}
    base = next((r for r in rows if r["method"] == "base"), None)
    lines = [
        "# Results: the seed methods side by side, and transfer", "",
        f"Generated by `{command}` ({budget_name} budget, model `{model}`, {_seeds_note(seeds)}; this invocation "
        f"took {seconds / 60:.0f} min on this machine, reading back what earlier ones stored). Regenerate with "
        "the same command; each run resumes from its store.", "",
        f"Budget per method: {budget['iterations']} iterations x {budget['tasks']} tasks x {budget['group']} "
        f"attempts, at most {budget['max_tokens']} new tokens a turn, sampling temperature 0.7 (0.9 for SCoRe). "
        f"Training families: {', '.join(TRAIN_FAMILIES)} (difficulty 0-0.5). Evaluations are greedy: "
        f"**held-out** = {budget['heldout']} held-out tasks of the training families (one attempt); "
        f"**unseen** = {budget['unseen']} held-out tasks of families never trained on ({', '.join(UNSEEN_FAMILIES)}); "
        f"**HumanEval** = the first {budget['humaneval']} HumanEval problems ({budget['humaneval_tokens']} new "
        f"tokens a turn, {budget['humaneval_dtype']} weights for every method scored). Unseen and HumanEval give each task "
        "up to 3 submissions with the tests' feedback between them: *first* is first-attempt success, *within 3* "
        "success within the 3. Cells: rate [95% bootstrap CI] (tasks solved / tasks). *vs base*: paired "
        "difference against the untrained model on the same tasks [95% CI].", "",
        f"HumanEval is scored for: {', '.join(chosen) or 'none'} ({_choice_note(humaneval)}).", "",
        "| method | held-out | vs base | unseen first | unseen within 3 | HumanEval first | vs base | "
        "HumanEval within 3 | vs base | train success | tokens | train min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ev = row["evals"]
        he, un = ev.get("humaneval"), ev.get("unseen")
        other = base if base is not None and row is not base else None
        lines.append(
            f"| {row['method']} | {_cell(ev.get('heldout'))} | {_vs(row, other, 'heldout', False)} | "
            f"{_cell(un and un['first_attempt'])} | {_cell(un)} | "
            f"{_cell(he and he['first_attempt'])} | {_vs(row, other, 'humaneval', True)} | {_cell(he)} | "
            f"{_vs(row, other, 'humaneval', False)} | "
            f"{row.get('train_success', float('nan')):.3f} | {row['tokens']:.0f} | {row['train_s'] / 60:.1f} |")
    lines += ["", "Methods:", ""] + [f"- **{r['method']}**: {r['what']}" for r in rows]
    if base is not None:
        lines += ["", "Reading it (written by the bench from the figures above):", ""] + reading(rows, base)
    by_name = {r["method"]: r for r in rows}
    contrasts = [(a, b, what) for a, b, what in CONTRASTS if a in by_name and b in by_name]
    if contrasts:
        lines += ["", "## Paired contrasts", "", "| contrast | held-out | unseen first | HumanEval first | "
                  "HumanEval within 3 |", "|---|---|---|---|---|"]
        for a, b, what in contrasts:
            ra, rb = by_name[a], by_name[b]
            lines.append(f"| {what} ({a} - {b}) | {_diff(_outcomes(ra, 'heldout', False), _outcomes(rb, 'heldout', False))} "
                         f"| {_diff(_outcomes(ra, 'unseen', True), _outcomes(rb, 'unseen', True))} "
                         f"| {_diff(_outcomes(ra, 'humaneval', True), _outcomes(rb, 'humaneval', True))} "
                         f"| {_diff(_outcomes(ra, 'humaneval', False), _outcomes(rb, 'humaneval', False))} |")
    if test_time is not None:
        lines += ["", "## Test-time self-improvement (TT-SI)", "",
                  f"**tt-si**: {METHODS['tt-si'][0]}. Same tasks as the held-out and unseen columns above, greedy, "
                  f"one submission an episode: the plain attempt, then {test_time['rounds']} reflect-and-retry rounds "
                  "on the unsolved tasks (3 attempts, as *within 3*, but with the model's own lessons between "
                  "attempts instead of the tests' feedback inside one episode).", "",
                  "| set | plain | with reflect-and-retry | vs plain | vs base within 3 (test feedback) | min |",
                  "|---|---|---|---|---|---|"]
        first_base = base["per_seed"][0][1] if base is not None else None  # TT-SI runs on the first seed
        for set_name in ("heldout", "unseen"):
            t = test_time[set_name]
            plain, retried = t["plain"]["outcomes"], t["with_retries"]["outcomes"]
            feedback = _outcomes(first_base, set_name, False) if first_base is not None and set_name == "unseen" else {}
            lines.append(f"| {set_name} | {_cell(t['plain'])} | {_cell(t['with_retries'])} | {_diff(retried, plain)} | "
                         f"{_diff(retried, feedback) if feedback else '-'} | {t['seconds'] / 60:.1f} |")
    teachers = [r for r in rows if r["teacher"]]
    if teachers:
        lines += ["", "## Teacher", "", "Per iteration (0-based; the teacher starts at iteration 1): proposals, "
                  "valid, accepted, and where the accepted ones came from.", "",
                  "| method | iteration | proposed | valid | accepted | from the LLM | from mutation | too close "
                  "to a held-out or HumanEval task |", "|---|---|---|---|---|---|---|---|"]
        for r in teachers:
            t = r["teacher"]
            for it in sorted(t.get("proposed", {})):
                cells = " | ".join(f"{t.get(k, {}).get(it, float('nan')):.0f}" for k in (
                    "proposed", "valid", "accepted", "accepted_llm", "accepted_mutation", "rejected_decontam"))
                lines.append(f"| {r['method']} | {it} | {cells} |")
        lines += ["", "Accepted tasks against HumanEval, measured afresh on the stored prompts: the largest share of "
                  "a task's word 5-grams found in one HumanEval problem (decontamination rejects above 0.4) and the "
                  "largest embedding cosine (all-MiniLM-L6-v2) with any of the 164 problems.", "",
                  "| method | accepted tasks | largest 5-gram overlap | largest cosine |", "|---|---|---|---|"]
        for r in teachers:
            if d := distances.get(r["method"]):
                lines.append(f"| {r['method']} | {d['tasks']:.0f} | {d['max_overlap']:.2f} | {d['max_cosine']:.2f} |")
    libraries = [r for r in rows if r["skills"]]
    if libraries:
        lines += ["", "## Skills", "", "Per iteration: skills the model proposed from its successes, how many passed "
                  "verification into the library, its size after, training episodes whose prompt showed skills, the "
                  "skills their final code used (a call or an import of a library skill's name) and uses per "
                  "episode shown (the skill-use rate).", "",
                  "| method | iteration | proposed | added | library | episodes shown skills | skill uses | use rate |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in libraries:
            k = r["skills"]
            for it in sorted(k.get("proposed", {})):
                shown, used = k.get("episodes_shown", {}).get(it, 0.0), k.get("uses", {}).get(it, 0.0)
                rate = f"{used / shown:.3f}" if shown else "-"
                lines.append(f"| {r['method']} | {it} | {k['proposed'][it]:.0f} | {k.get('added', {}).get(it, 0):.0f} | "
                             f"{k.get('size', {}).get(it, 0):.0f} | {shown:.0f} | {used:.0f} | {rate} |")
    lines += ["", f"![held-out, unseen and HumanEval success per method]({path.with_suffix('.png').name})", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    _plot(rows, path.with_suffix(".png"))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [("heldout", False, "held-out"), ("unseen", True, "unseen first"), ("humaneval", True, "HumanEval first"),
            ("humaneval", False, "HumanEval within 3")]
    fig, axes = plt.subplots(1, len(sets), figsize=(4 * len(sets), 3.6), sharey=False)
    for ax, (set_name, first, title) in zip(axes, sets, strict=True):
        names: list[str] = []
        values: list[float] = []
        errs: list[list[float]] = [[], []]
        for row in rows:
            metrics = row["evals"].get(set_name)
            if metrics is None:
                continue
            m = metrics["first_attempt"] if first else metrics
            names.append(row["method"])
            values.append(m["success_rate"])
            errs[0].append(m["success_rate"] - m["ci95"][0])
            errs[1].append(m["ci95"][1] - m["success_rate"])
        ax.barh(names, values, xerr=errs, color="#4c72b0", ecolor="#333")
        ax.set(title=title, xlim=(0, max([v + e for v, e in zip(values, errs[1], strict=True)] + [0.05]) * 1.1))
        ax.invert_yaxis()
    fig.suptitle("Success with 95% CIs (greedy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="quick")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--model", default="embedded", help="embedded, tiny (random weights: plumbing only), a path")
    parser.add_argument("--seed", default="0",
                        help="a seed, or a comma list (0,1): each method runs once per seed and the table pools them; "
                             "HumanEval and TT-SI are scored on the first seed")
    parser.add_argument("--out", default="runs/methods", help="folder of the runs (one store per method)")
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--humaneval", default="best",
                        help="which runs are scored on HumanEval: best (base and the trained method with the best "
                             "procedural validation score), all, none, or a comma list of methods")
    args = parser.parse_args()
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    names = ["base"] + [m for m in names if m != "base"]
    model = args.model
    if model == "tiny":
        from selfgym.agents.models import tiny_model_dir

        model = str(tiny_model_dir())
    budget = BUDGETS[args.budget]
    seeds = [int(s) for s in str(args.seed).split(",") if s.strip()]
    runs = {seed: Path(args.out) / f"{args.budget}-seed{seed}" for seed in seeds}
    configs = {(seed, name): method_config(name, budget, model, seed)  # every config checked first
               for seed in seeds for name in names}
    started = time.perf_counter()
    for (seed, name), config in configs.items():
        if name == "tt-si" and seed != seeds[0]:
            continue  # TT-SI is scored on the first seed only
        out = runs[seed]
        print(f"== {name} (seed {seed}): {METHODS[name][0]}", flush=True)
        t0 = time.perf_counter()
        if name == "base":
            evaluate_at(config, out / name, 0, heldout=True)
        elif name == "tt-si":
            evaluate_test_time(config, out / name, budget["unseen"])
            print(f"== {name} done in {time.perf_counter() - t0:.0f}s", flush=True)
            continue
        else:
            train(config, out / name, resume=True)
        write_report(out / name, name)
        print(f"== {name} done in {time.perf_counter() - t0:.0f}s", flush=True)
    trained = [name for name in names if name != "tt-si"]

    def pooled() -> dict[str, dict[str, Any]]:
        return {name: pool_seeds([(seed, summarise(runs[seed], name)) for seed in seeds]) for name in trained}

    chosen = humaneval_methods(args.humaneval, trained, pooled())
    first = runs[seeds[0]]
    for name in chosen:  # scored after the choice, on the first seed's final weights and memory
        print(f"== {name}: HumanEval", flush=True)
        iteration = 0 if name == "base" else budget["iterations"]
        evaluate_at(method_config(name, budget, model, seeds[0], humaneval=True), first / name, iteration,
                    heldout=False)
        write_report(first / name, name)
    rows = list(pooled().values())
    test_time = (evaluate_test_time(configs[(seeds[0], "tt-si")], first / "tt-si", budget["unseen"])
                 if "tt-si" in names else None)
    command = (f"python bench/methods.py --budget {args.budget} --methods {','.join(names)} "
               f"--seed {','.join(map(str, seeds))} --humaneval {args.humaneval}")
    write_results(rows, Path(args.results), budget_name=args.budget, budget=budget, model=args.model, seeds=seeds,
                  command=command, seconds=time.perf_counter() - started, chosen=chosen, test_time=test_time,
                  humaneval=args.humaneval,
                  distances=humaneval_distances({r["method"]: first / r["method"] for r in rows if r["teacher"]}))
    print(Path(args.results).read_text())


if __name__ == "__main__":
    main()
