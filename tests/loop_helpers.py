"""A tiny env for loop tests: success is a coin flip on the reply, so every group has contrast."""

from __future__ import annotations

import selfgym
from selfgym.envs.base import LLMEnv, StepResult
from selfgym.envs.tasks import ProceduralTaskSource


class EvenTasks(ProceduralTaskSource):
    family = "even"

    def generate(self, rng, difficulty):
        return f"Reply with a word of even length (task {int(rng.integers(1000))}).", {}


class EvenEnv(LLMEnv):
    """Success when the reply's length (stripped) is even: about half of random replies."""

    def default_task_source(self):
        return EvenTasks()

    def env_response(self, action):
        ok = len(action.strip()) % 2 == 0
        return StepResult(observation="yes" if ok else "no", reward=float(ok), terminated=True, success=ok)

    def oracle_action(self):
        return "ok"


def register() -> None:
    if "selfgym/TestEven-v0" not in {e.id for e in selfgym.list_envs()}:
        selfgym.register_env("TestEven-v0", EvenEnv, max_episode_steps=2)


def config_text(name: str, model: str, algorithm: str = "grpo", iterations: int = 2) -> str:
    return f'''
name = "{name}"
iterations = {iterations}
[env]
id = "selfgym/TestEven-v0"
difficulties = [0.0, 1.0]
[policy]
model = "{model}"
device = "cpu"
[agent.sampling]
max_tokens = 6
temperature = 1.0
[rollout]
tasks_per_iteration = 3
group_size = 2
[trainer]
algorithm = "{algorithm}"
[trainer.grpo.train]
learning_rate = 0.001
batch_size = 4
micro_batch_size = 4
[trainer.rft.train]
learning_rate = 0.001
batch_size = 4
micro_batch_size = 4
[eval]
n_tasks = 4
'''
