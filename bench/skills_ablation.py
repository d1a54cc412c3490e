"""Skills read-write vs off on a procedural family where reuse helps, with a scripted noisy policy.

The family (``arithmetic`` by default) draws from a handful of function kinds, so a function solved
once recurs in later tasks. The policy is scripted: from scratch it writes the right function with
probability ``--skill`` (else a wrong one); when a retrieved library skill has the task's function
name, it imports it (``from skills import name``). The extraction model is scripted too: it turns the
solved code into a candidate and the task's examples into ``assert`` tests. Everything else is the
real pipeline: BM25 retrieval into the agent's view, verification of every candidate in the bwrap
sandbox, versions, the ``skills`` module in the sandbox, the verifier's verdict.

Two arms over the same SAGE chain of train tasks and the same held-out tasks:
``read-write`` (the curator updates the library after each task; held-out tasks read the final
library) and ``off`` (no library). Prints success on the chain and on the held-out tasks with 95%
CIs and the paired held-out difference.

With ``--agent embedded`` the held-out tasks are played by the embedded SmolLM2-135M-Instruct
(``LLMAgent``, greedy, the library as its skill memory: the top-k skills in its prompt, the
``skills`` module in the sandbox) instead of the scripted coder; the chain that writes the
library stays scripted.

``--presentation code,signature`` adds one read-write arm per way of showing a skill in the prompt
(its whole code, or its signature, one-line doc and a worked import), compared task by task.

Run: ``python bench/skills_ablation.py [--chain 60] [--heldout 60] [--skill 0.5] [--agent embedded]
[--presentation code,signature]``
(scripted: under a minute on 2 cores; embedded: a few minutes)
"""

from __future__ import annotations

import argparse
import re
import tempfile
from typing import Any

import numpy as np

import selfgym
from selfgym.envs.code.families import FAMILIES
from selfgym.envs.tasks import HELDOUT_SEED_BASE
from selfgym.run.chain import run_chain
from selfgym.skills import SkillCurator, SkillLibrary, SkillsConfig, skills_env_factory
from selfgym.stats import bootstrap_ci
from selfgym.store import Store
from selfgym.types import Completion

_EXAMPLE = re.compile(r"^\s+(\w+\(.*\)) == (.+)$", re.MULTILINE)


class NoisyCoder:
    """Imports a library skill named like the task's function; otherwise right with probability ``skill``."""

    name = "noisy-coder"

    def __init__(self, env: Any, library: SkillLibrary | None, skill: float, rng: np.random.Generator) -> None:
        self.env, self.library, self.skill, self.rng = env, library, skill, rng
        self.episode = None

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        task = self.env.unwrapped.task
        shown = self.library.retrieve(task, 3) if self.library is not None else []

        class Episode:
            memory_ids = {"skill": [s.id for s in shown]} if shown else {}
        self.episode, self.task, self.shown = Episode(), task, shown

    def act(self, observation: str, info: dict[str, Any]) -> Completion:
        name = self.task.payload["entry_point"]
        if any(s.name == name for s in self.shown):
            return Completion(text=f"```python\nfrom skills import {name}\n```")
        if self.rng.random() < self.skill:
            return Completion(text=self.env.unwrapped.oracle_action())
        return Completion(text=f"```python\n{self.task.payload['stub']}    return None\n```")


class ScriptedExtractor:
    """Answers an extraction chat with the solved code and asserts from the task's examples."""

    name = "scripted-extractor"

    def generate(self, prompts: list[list[dict[str, str]]], params: Any) -> list[Completion]:
        out = []
        for chat in prompts:
            request = chat[-1]["content"]
            code = re.search(r"```python\n(.*?)```", request, re.DOTALL).group(1)
            tests = "\n".join(f"assert {call} == {value}" for call, value in _EXAMPLE.findall(request))
            out.append(Completion(text=f"```python\n{code}```\n```python\n{tests}\n```"))
        return out


def summary(outcomes: list[float]) -> str:
    low, high = bootstrap_ci(outcomes)
    return f"{np.mean(outcomes):.3f} [{low:.3f}, {high:.3f}]"


def run_arm(mode: str, args: argparse.Namespace, store_dir: str, heldout_agent: Any,
            presentation: str = "code") -> tuple[list[float], list[float], dict[str, Any]]:
    """One arm: the SAGE chain of train tasks (scripted coder), then the held-out tasks played by
    ``heldout_agent(library)``, a factory or batch agent, with the final library (its skills shown
    as ``presentation``) or none."""
    from selfgym.run.rollout import RolloutConfig, run_rollouts

    family = FAMILIES[args.family]
    chain = [family.make(i, args.difficulty) for i in range(args.chain)]
    heldout = [family.make(HELDOUT_SEED_BASE + i, args.difficulty) for i in range(args.heldout)]

    def make_env() -> Any:
        return selfgym.make("selfgym/Code-v0", families=args.family, max_attempts=1)

    rng = np.random.default_rng(args.seed)
    store = Store(store_dir)
    store.create_run(mode, {})
    if mode == "off":
        played = run_rollouts(make_env, lambda env: NoisyCoder(env, None, args.skill, rng), chain,
                              RolloutConfig(progress=False)).trajectories
        test = run_rollouts(make_env, heldout_agent(None), heldout, RolloutConfig(progress=False)).trajectories
        return [float(t.success) for t in played], _by_task(test, heldout), {"library": 0}
    library = SkillLibrary(store, SkillsConfig(mode="read-write", presentation=presentation), run_id=mode)
    curator = SkillCurator(library, ScriptedExtractor())
    result = run_chain(make_env, lambda env: NoisyCoder(env, library, args.skill, rng), chain, curator)
    test = run_rollouts(skills_env_factory(make_env, library), heldout_agent(library), heldout,
                        RolloutConfig(progress=False)).trajectories
    totals = {k: sum(s.get(f"skills/{k}", 0) for s in result.steps) for k in ("added", "merged", "rejected", "uses")}
    info = {"library": len(library.skills()), **totals,
            "held_out_shown": sum(bool(t.memory.get("skill")) for t in test),
            "held_out_used": sum(bool(t.turns[-1].info.get("skills_used")) for t in test)}
    return [float(t.success) for t in result.trajectories], _by_task(test, heldout), info


def heldout_agents(args: argparse.Namespace) -> Any:
    """``library -> agent`` for the held-out tasks: the scripted coder, or the embedded model
    (greedy ``LLMAgent``, the library as its skill memory)."""
    rng = np.random.default_rng(args.seed + 1)
    if args.agent == "scripted":
        return lambda library: (lambda env: NoisyCoder(env, library, args.skill, rng))
    from selfgym.agents.hf import TransformersConfig, TransformersPolicy
    from selfgym.agents.llm import AgentConfig, LLMAgent
    from selfgym.agents.models import load_model
    from selfgym.agents.policy import SamplingParams

    model, tokenizer = load_model("embedded")
    policy = TransformersPolicy(model, tokenizer, TransformersConfig(name="embedded", max_batch_size=32))
    config = AgentConfig(system_prompt="You write correct, minimal Python. Reply with one ```python code block "
                                       "and nothing else.", max_prompt_tokens=1536,
                         sampling=SamplingParams(max_tokens=128, temperature=0.0))
    return lambda library: LLMAgent(policy, config, memory=[library] if library is not None else [])


def _by_task(trajs: list[Any], tasks: list[Any]) -> list[float]:
    outcome = {t.task_id: float(t.success) for t in trajs}
    return [outcome[t.id] for t in tasks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="arithmetic", choices=sorted(FAMILIES))
    parser.add_argument("--difficulty", type=float, default=0.5)
    parser.add_argument("--chain", type=int, default=60, help="train tasks in the SAGE chain")
    parser.add_argument("--heldout", type=int, default=60)
    parser.add_argument("--skill", type=float, default=0.5, help="from-scratch success probability of the policy")
    parser.add_argument("--agent", choices=("scripted", "embedded"), default="scripted",
                        help="who plays the held-out tasks: the scripted coder or the embedded model (greedy)")
    parser.add_argument("--presentation", default="code",
                        help="comma list of how prompts show skills (code, signature): one read-write arm each")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    arms = [(f"read-write/{p}", p) for p in args.presentation.split(",")] + [("off", "code")]
    results = {}
    agents = heldout_agents(args)
    with tempfile.TemporaryDirectory() as tmp:
        for name, presentation in arms:
            results[name] = run_arm(name.split("/")[0], args, f"{tmp}/{name.replace('/', '-')}", agents, presentation)
    print(f"family {args.family} d={args.difficulty}, chain {args.chain} (scripted, from-scratch success "
          f"{args.skill}), held-out {args.heldout} played by the {args.agent} agent")
    for name, (chain, held, info) in results.items():
        print(f"  skills {name:20s} chain {summary(chain)}  held-out {summary(held)}  {info}")
    names = list(results)
    for a, b in [(n, "off") for n in names[:-1]] + list(zip(names[:-2], names[1:-1], strict=True)):
        diff = [x - y for x, y in zip(results[a][1], results[b][1], strict=True)]
        low, high = bootstrap_ci(diff)
        print(f"  held-out {a} - {b} (paired): {np.mean(diff):+.3f} [{low:+.3f}, {high:+.3f}]")


if __name__ == "__main__":
    main()
