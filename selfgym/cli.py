"""The ``selfgym`` command line: list envs, play episodes, evaluate, export a run's data."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import selfgym
from selfgym.envs.base import llm_env
from selfgym.errors import SelfgymError
from selfgym.run.episode import STUCK_AFTER

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="selfgym: environments and a training loop for self-improving LLM agents.")
console = Console(highlight=False, soft_wrap=True)


def _mount_skills() -> None:
    from selfgym.skills.cli import skills_app

    app.add_typer(skills_app, name="skills")


_mount_skills()

AgentOpt = Annotated[str, typer.Option("--agent", "-a", help="scripted | random | llm (embedded model)")]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="store trajectories in this run directory")]


def _agent_factory(name: str, seed: int):
    """Build agents by name; ``llm`` and other policy names come from ``selfgym.agents`` when present."""
    from selfgym.agents import make_agent

    return lambda env: make_agent(name, env, seed=seed)


@app.command("envs")
def envs_cmd() -> None:
    """List the registered environments and task sources (for `selfgym eval --tasks`)."""
    table = Table("id", "turn budget", "description", "from", box=None, header_style="bold")
    for info in selfgym.list_envs():
        table.add_row(info.id, str(info.max_episode_steps or "-"), info.description, info.plugin or "selfgym")
    console.print(table)
    sources = Table("task source", "description", box=None, header_style="bold")
    for name, description in sorted(selfgym.list_task_sources().items()):
        sources.add_row(name, description)
    console.print(sources)


@app.command("run")
def run_cmd(
    env_id: Annotated[str, typer.Argument(help="environment id, e.g. selfgym/Guess-v0")],
    agent: AgentOpt = "scripted",
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1)] = 1,
    seed: Annotated[int, typer.Option(help="seed of the first episode (then seed+1, ...)")] = 0,
    split: Annotated[str, typer.Option(help="train | heldout | generated")] = "train",
    render: Annotated[bool, typer.Option("--render/--no-render", help="print the dialogue")] = True,
    run_dir: RunDirOpt = None,
) -> None:
    """Play episodes and print the dialogue."""
    from selfgym.run.episode import run_episode
    from selfgym.store import Store

    env = selfgym.make(env_id, render_mode="ansi")
    store = Store(run_dir) if run_dir else None
    if store:
        store.create_run("cli-run", {"env_id": env_id, "agent": agent})
    make = _agent_factory(agent, seed)
    the_agent = make(env)
    wins = 0
    for episode in range(episodes):
        traj = run_episode(env, the_agent, seed=seed + episode, split=split, run_id="cli-run", policy_id=agent)
        wins += traj.success
        if store:
            store.add_tasks([llm_env(env).task], run_id="cli-run")
            store.add_trajectory(traj)
        if render:
            console.rule(f"episode {episode} · task {traj.task_id}")
            console.print(env.render(), markup=False)
        status = "success" if traj.success else ("aborted: " + traj.aborted if traj.aborted else "failure")
        console.print(f"episode {episode}: {status}, reward {traj.total_reward:g}, {len(traj.turns)} turns, "
                      f"{traj.duration_s:.2f}s", markup=False)
    env.close()
    console.print(f"[bold]{wins}/{episodes} solved[/bold]" + (f" · stored in {store.path}" if store else ""))


@app.command("eval")
def eval_cmd(
    env_id: Annotated[str, typer.Argument(help="environment id")],
    agent: AgentOpt = "scripted",
    policy: Annotated[str | None, typer.Option(
        "--policy", help="LLM agent on this model: embedded, a checkpoint or LoRA dir, a .gguf, openai:URL or openai:URL#model")] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="number of tasks")] = 20,
    k: Annotated[int, typer.Option("-k", min=1, help="attempts per task (pass@k)")] = 1,
    split: Annotated[str, typer.Option(help="split to evaluate on")] = "heldout",
    memory: Annotated[str, typer.Option(
        help="off | on (the run's reflections and skills) | snapshot[:ID] (a pinned skill snapshot)")] = "off",
    memory_run: Annotated[Path | None, typer.Option(help="run directory whose memory the agent reads")] = None,
    seed: int = 0,
    max_concurrent: Annotated[int, typer.Option(min=1, help="episodes in flight (batched generate)")] = 16,
    run_dir: RunDirOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the scores as JSON here")] = None,
    backend: Annotated[str, typer.Option(
        help="local (in-process, batched generate) | ray (Ray env workers; $RAY_ADDRESS or a local instance)")] = "local",
    workers: Annotated[int, typer.Option(min=1, help="env workers with --backend ray")] = 2,
    remote: Annotated[str | None, typer.Option(
        help="play on an env server (selfgym serve) at this ws://host:port instead of a local env")] = None,
    tasks_spec: Annotated[str | None, typer.Option(
        "--tasks", help="task source instead of the env's own: NAME or NAME:PATH (humaneval, mbpp:FILE, "
                        "code-jsonl:FILE; `selfgym envs` lists them)")] = None,
    env_arg: EnvArgOpt = None,
    temperature: Annotated[float | None, typer.Option(
        min=0.0, help="LLM agent sampling temperature (0: greedy; default: greedy with -k 1, as the loop's "
                      "eval, and the agent's own for pass@k)")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="LLM agent: new tokens per turn")] = None,
    stuck_after: Annotated[int, typer.Option(
        min=0, help="end an episode when the same action got the same answer this many times in a row (0: never)")
    ] = STUCK_AFTER,
) -> None:
    """Score an agent on a split: success rate with a bootstrap 95% CI, pass@k, per family and difficulty."""
    from selfgym.agents.policy import MeteredPolicy
    from selfgym.run.evaluate import evaluate_tasks, split_tasks
    from selfgym.run.stages import rollout_metrics, throughput
    from selfgym.store import EVAL_KIND, Store

    if backend not in ("local", "ray"):
        raise SelfgymError(f"--backend must be local or ray, got {backend!r}")
    if backend == "ray" and memory != "off":
        raise SelfgymError(f"--memory {memory} reads the run's store in this process; use --backend local")
    name = f"llm:{policy}" if policy else agent
    env_args = _env_args(env_arg)
    env_kwargs = _eval_env_kwargs(env_args, tasks_spec, remote)
    env = selfgym.make(env_id, **env_kwargs)
    try:
        tasks = split_tasks(llm_env(env).task_source, split, n, env_id=env_id)
    finally:
        env.close()
    if k > 1 and temperature == 0:
        raise SelfgymError("-k > 1 with --temperature 0 repeats one greedy answer; give a temperature > 0")
    # one attempt is scored greedily, as the loop's eval section does, unless the flag or the spec says
    greedy = temperature is None and k == 1 and name.startswith("llm") and "temperature=" not in name
    if backend == "local":
        player = _sampled(_eval_agent(name, memory, memory_run, seed), 0.0 if greedy else temperature, max_tokens)
    elif temperature is not None or max_tokens is not None:
        raise SelfgymError("--temperature and --max-tokens apply with --backend local")
    else:
        player = _worker_agent(f"{name}{'&' if '?' in name else '?'}temperature=0" if greedy else name, seed)
    store = Store(run_dir) if run_dir else None
    run_id = f"eval-{name}".replace("/", "_")
    if store:
        store.create_run(run_id, {"env_id": env_id, "agent": name, "split": split, "n": n, "k": k, "memory": memory,
                                  "tasks": tasks_spec, "env_args": env_args, "temperature": temperature,
                                  "max_tokens": max_tokens, "stuck_after": stuck_after}, kind=EVAL_KIND)
    make_env = lambda: selfgym.make(env_id, **env_kwargs)  # noqa: E731
    library = next((m for m in getattr(player, "memory", []) if getattr(m, "kind", "") == "skill"), None)
    if library is not None:  # the skills shown in the prompt are importable in the sandbox
        from selfgym.skills import skills_env_factory

        make_env = skills_env_factory(make_env, library)
    rollouts = None
    if backend == "ray":
        from selfgym.run.distributed import RayConfig, RayRollouts

        rollouts = RayRollouts(RayConfig(workers=workers))
    policy = getattr(player, "policy", None)
    before = policy.stats() if isinstance(policy, MeteredPolicy) else None
    result, played = evaluate_tasks(make_env, player, tasks, k=k, seed=seed, max_concurrent=max_concurrent,
                                    stuck_after=stuck_after,
                                    progress=console.is_terminal, rollouts=rollouts, store=store, run_id=run_id,
                                    policy_id=name)
    spent = policy.stats() - before if isinstance(policy, MeteredPolicy) and before is not None else None
    cost = rollout_metrics(played.steps, played.generated_tokens, played.wall_s, spent, played.stuck)
    if store:
        store.add_eval(run_id=run_id, env_id=env_id, split=split, metrics=result.to_dict())
    _print_eval(f"{env_id} · {split} · {result.n_tasks} tasks x {k}", result)
    stuck = f" ({played.stuck} ended stuck)" if played.stuck else ""
    console.print(f"{len(played.trajectories)} episodes{stuck}, {played.steps} env steps in {played.wall_s:.1f}s"
                  + throughput(cost), markup=False)
    if json_out:
        json_out.write_text(json.dumps(result.to_dict() | {"throughput": cost}, indent=2))


def _eval_env_kwargs(env_args: dict[str, Any], tasks_spec: str | None, remote: str | None) -> dict[str, Any]:
    """``selfgym.make`` keywords for ``selfgym eval``: the ``--env-arg`` values, the ``--tasks`` source
    and the ``--remote`` server (not both: a server plays its own tasks)."""
    env_kwargs = dict(env_args)
    if tasks_spec:
        if remote:
            raise SelfgymError("--tasks chooses the tasks of a local env; an env server plays its own (drop --remote)")
        env_kwargs["task_source"] = selfgym.registry.task_source_from_spec(tasks_spec)
    if remote:
        env_kwargs["remote"] = remote
    return env_kwargs


def _print_eval(heading: str, result: Any) -> None:
    """The scores of ``selfgym eval``: success with its CI, pass@k, then by family and by difficulty."""
    low, high = result.ci95
    console.print(f"{heading}: success {result.success_rate:.3f} (95% CI {low:.3f}-{high:.3f}), "
                  + ", ".join(f"{m} {v:.3f}" for m, v in result.pass_at_k.items()), markup=False)
    for title, groups in (("family", result.by_family), ("difficulty", result.by_difficulty)):
        table = Table(title, "tasks", "success", "95% CI", box=None, header_style="bold")
        for group, scores in groups.items():
            table.add_row(group, str(scores["n_tasks"]), f"{scores['success_rate']:.3f}",
                          "{:.3f}-{:.3f}".format(*scores["ci95"]))
        console.print(table)


EnvArgOpt = Annotated[list[str] | None, typer.Option(
    "--env-arg", help="env keyword argument key=value (value read as JSON when it parses), repeatable")]


def _env_args(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs as env keyword arguments (a value that parses as JSON is that JSON)."""
    env_args: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SelfgymError(f"--env-arg takes key=value, got {item!r}")
        try:
            env_args[key] = json.loads(value)
        except ValueError:
            env_args[key] = value
    return env_args


def _sampled(player: Any, temperature: float | None, max_tokens: int | None) -> Any:
    """The LLM agent with the sampling flags applied (greedy is --temperature 0)."""
    if temperature is None and max_tokens is None:
        return player
    if not hasattr(player, "with_config"):
        raise SelfgymError("--temperature and --max-tokens set an LLM agent's sampling: pass --policy or --agent llm")
    sampling = player.config.sampling
    changes = {k: v for k, v in (("temperature", temperature), ("max_tokens", max_tokens)) if v is not None}
    return player.with_config(sampling=replace(sampling, **changes))


def _eval_agent(name: str, memory: str, memory_run: Path | None, seed: int):
    """The evaluated agent: a factory for scripted/random, an ``LLMAgent`` (with memory) for llm specs."""
    if memory == "off":
        return _agent_factory(name, seed) if name in ("scripted", "random") else _llm_agent(name)
    if not name.startswith("llm"):
        raise SelfgymError(f"--memory {memory} needs an LLM agent (--policy or --agent llm), not {name!r}")
    if memory_run is None:
        raise SelfgymError(f"--memory {memory} reads a run's memory: pass --memory-run RUN_DIR")
    from selfgym.run.loop import run_memory

    return _llm_agent(name).with_memory(run_memory(memory_run, memory))


def _worker_agent(name: str, seed: int):
    """A picklable factory of the agent each Ray worker plays with (an llm spec's policy loads there)."""
    from selfgym.run.distributed import NamedAgentFactory

    return NamedAgentFactory(name, seed)


def _llm_agent(name: str):
    from selfgym.agents import make_agent

    return make_agent(name)


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory (holds store.sqlite)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output: a .jsonl file or a dataset folder")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl | hf (datasets.Dataset.save_to_disk)")] = "jsonl",
    success_only: Annotated[bool, typer.Option("--success-only")] = False,
    include_eval: Annotated[bool, typer.Option(
        "--include-eval", help="also the evaluations' episodes (held-out and transfer sets: never training data)")] = False,
) -> None:
    """Export a run's trajectories (JSONL with token ids, or a chat-format HF dataset); the episodes of
    evaluations are left out unless ``--include-eval``."""
    from selfgym.store import STORE_FILENAME, Store

    if not (run_dir / STORE_FILENAME).exists():
        raise SelfgymError(f"{run_dir} has no {STORE_FILENAME}; pass a run directory")
    store = Store(run_dir)
    filters: dict[str, Any] = {"include_eval": include_eval, **({"success": True} if success_only else {})}
    if fmt == "jsonl":
        count = store.export_jsonl(out, **filters)
    elif fmt == "hf":
        dataset = store.to_dataset(**filters)
        dataset.save_to_disk(str(out))
        count = len(dataset)
    else:
        raise SelfgymError(f"--format must be jsonl or hf, got {fmt!r}")
    console.print(f"exported {count} trajectories to {out}", markup=False)


@app.command("train")
def train_cmd(
    config_path: Annotated[Path | None, typer.Argument(help="TOML run config (see configs/)")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="default: runs/<name>")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run stored in the run directory")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="write the HTML report at the end")] = True,
    help_config: Annotated[bool, typer.Option("--help-config", help="print every config key with its help")] = False,
) -> None:
    """Run the gym loop: curriculum, rollouts, memory, trainer, held-out evaluation."""
    from selfgym.config import describe, load_toml
    from selfgym.run.loopconfig import RunConfig

    if help_config:
        console.print("\n".join(describe(RunConfig)), markup=False)
        return
    if config_path is None:
        raise SelfgymError("pass a config file, e.g. selfgym train configs/demo.toml")
    config = load_toml(config_path, RunConfig)
    from selfgym.run.loop import train

    run_dir = run_dir or Path("runs") / config.name
    result = train(config, run_dir, resume=resume, console=console)
    scores = ", ".join(f"it{it}: {v:.3f}" for it, v in sorted(result.heldout.items()))
    console.print(f"held-out success by iteration: {scores}", markup=False)
    if report:
        from selfgym.run.report import write_report

        console.print(f"report: {write_report(run_dir, result.run_id)}", markup=False)


@app.command("ablate")
def ablate_cmd(
    config_path: Annotated[Path, typer.Argument(help="TOML run config (the full variant)")],
    without: Annotated[str | None, typer.Option(
        help="comma-separated components to remove one at a time: teacher, skills, reflections, rl "
             "(default: every one the config uses)")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="default: runs/<name>-ablation")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the variants stored in --out")] = False,
) -> None:
    """Run matched-budget variants of a config without each component, and one comparison report."""
    from selfgym.config import load_toml
    from selfgym.run.ablate import fmt_score, run_ablation
    from selfgym.run.loopconfig import RunConfig

    config = load_toml(config_path, RunConfig)
    names = [w.strip() for w in without.split(",") if w.strip()] if without else None
    result = run_ablation(config, out_dir or Path("runs") / f"{config.name}-ablation", without=names,
                          resume=resume, console=console)
    for row in result.rows:
        vs = "" if row["variant"] == "full" else f", vs full {fmt_score(row['vs_full'], sign='+')}"
        console.print(f"{row['variant']}: held-out {fmt_score(row['before'])} -> {fmt_score(row['after'])}{vs}",
                      markup=False)
    console.print(f"comparison: {result.html}", markup=False)


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory (holds store.sqlite)")],
    run_id: Annotated[str | None, typer.Option("--run", help="run id (default: the latest in the store)")] = None,
    viewer: Annotated[str | None, typer.Option(
        "--viewer", help="base URL of a selfgym view to link into (default: a running one that serves RUN_DIR)")] = None,
) -> None:
    """Write the run's HTML report (plots, before/after table) and TensorBoard scalars."""
    from selfgym.run.report import write_report
    from selfgym.store import STORE_FILENAME

    if not (run_dir / STORE_FILENAME).exists():
        raise SelfgymError(f"{run_dir} has no {STORE_FILENAME}; pass a run directory")
    path = write_report(run_dir, run_id, viewer=viewer)
    console.print(f"report: {path}", markup=False)


@app.command("view")
def view_cmd(
    run_dirs: Annotated[list[Path] | None, typer.Argument(
        help="run directories, or folders of them such as an ablation's (default: every run under runs/)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8765,
) -> None:
    """Serve a local web app to look inside runs (read-only; works while a run is being written)."""
    from selfgym.store import STORE_FILENAME
    from selfgym.view import serve
    from selfgym.view.source import discover

    # default: runs/ searched for run directories (also an ablation's or bench/methods.py's, further down)
    dirs = run_dirs or [Path("runs")]
    refs, groups = discover(dirs)
    if not run_dirs and not any(ref.path.is_file() for ref in refs):
        raise SelfgymError(f"no run directory given and none under runs/ holds a {STORE_FILENAME}; "
                           "pass one: selfgym view RUN_DIR")
    compared = f", {len(groups)} folder{'' if len(groups) == 1 else 's'} compared on /ablation" if groups else ""
    console.print(f"selfgym view: http://{host}:{port}/ ({len(refs)} run director{'y' if len(refs) == 1 else 'ies'}"
                  f"{compared}; Ctrl+C stops it)", markup=False)
    serve(dirs, host=host, port=port)


@app.command("serve")
def serve_cmd(
    env_id: Annotated[str, typer.Argument(help="registered env id (built-in or plugin), e.g. selfgym/Code-v0")],
    host: Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    max_sessions: Annotated[int, typer.Option(min=1, help="concurrent sessions (one env each); more are refused")] = 256,
    idle_timeout: Annotated[float, typer.Option(help="seconds without a message before a session and its env close")] = 600.0,
    step_timeout: Annotated[float, typer.Option(help="seconds a reset or step may take before its session closes")] = 300.0,
    env_arg: Annotated[list[str] | None, typer.Option(
        "--env-arg", help="env keyword argument key=value (value read as JSON when it parses), repeatable")] = None,
) -> None:
    """Serve an env over OpenEnv's HTTP/WebSocket protocol (reset, step, state; sessions on /ws)."""
    from selfgym.serve import ServeConfig, serve

    env_args = _env_args(env_arg)
    config = ServeConfig(env_id=selfgym.registry.resolve_env_id(env_id), env_args=env_args, host=host, port=port,
                         max_sessions=max_sessions, idle_timeout=idle_timeout, step_timeout=step_timeout)
    try:  # a wrong --env-arg fails here, not in every session
        selfgym.make(config.env_id, **env_args).close()
    except TypeError as exc:
        raise SelfgymError(f"{config.env_id} does not take these --env-arg values: {exc}") from exc
    console.print(f"selfgym serve: {config.env_id} on ws://{host}:{port}/ws and http://{host}:{port} "
                  f"(up to {max_sessions} sessions; Ctrl+C stops it)", markup=False)
    serve(config)


def main() -> None:
    """Entry point: run the app; our own errors print one line and exit with code 2."""
    try:
        app(standalone_mode=True)
    except SelfgymError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
