"""A TRL ``rollout_func`` whose multi-turn episodes are played by selfgym's rollout engine.

TRL's contract (``trl.trainer.grpo_trainer.RolloutFunc``): ``rollout_func(prompts, trainer)``
gets the process's prompts (each already repeated ``num_generations`` times) and returns one
sequence per prompt: ``prompt_ids``, ``completion_ids``, ``logprobs``; ``env_mask`` (1 on the
model's tokens, 0 on tokens it did not write) masks the loss; every other key goes to the reward
functions, one value per prompt.

Here each prompt names a task (by its text, as ``task_dataset`` writes it); ``run_rollouts``
plays one episode of it with a ``TokenExactAgent`` over the trainer's current weights. That agent
keeps one growing token sequence per episode (each observation is appended in its chat-template
wrapping, nothing is re-tokenised), so an episode is exactly one TRL sequence: the first prompt,
then the agent's completions with the observations between them masked out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selfgym.agents.hf import TransformersConfig, TransformersPolicy
from selfgym.agents.llm import AgentConfig, LLMAgent
from selfgym.agents.prompt import clip_text
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.types import Completion, SamplingParams, Task, Trajectory

from .trl import resolve_tasks

__all__ = ["SelfgymRollout", "TokenExactAgent", "episode_reward", "success_reward", "trl_sequences"]

_SENTINEL = "\x01reply\x01"


@dataclass
class _Episode:
    system: str
    ids: list[int] = field(default_factory=list)
    ended: bool = True  # the last completion ended with an end-of-turn token


class TokenExactAgent:
    """A ``BatchAgent`` whose prompts extend the previous prompt and completion token for token.

    The system message is the ``LLMAgent``'s (instructions, tools); the first prompt is the chat
    template over it and the first observation; each later prompt is the previous prompt, the
    completion, and the next observation as the chat template wraps a user turn.
    """

    name = "trl"

    def __init__(self, policy: TransformersPolicy, config: AgentConfig | None = None) -> None:
        self.policy = policy
        self.inner = LLMAgent(policy, config)

    @property
    def policy_id(self) -> str:
        return self.policy.name

    def start(self, observation: str, info: dict[str, Any], env: Any = None) -> _Episode:
        return _Episode(system=self.inner.start(observation, info, env).system)

    def observation_ids(self, observation: str, ended: bool) -> list[int]:
        """The tokens of a user turn following an assistant turn (its end token first if it was cut)."""
        tokenizer = self.policy.tokenizer
        base = [{"role": "user", "content": "x"}, {"role": "assistant", "content": _SENTINEL}]
        text = tokenizer.apply_chat_template([*base, {"role": "user", "content": observation}], tokenize=False,
                                             add_generation_prompt=True)
        end = text.index(_SENTINEL) + len(_SENTINEL) + len(tokenizer.eos_token)
        ids = list(tokenizer(text[end:], add_special_tokens=False)["input_ids"])
        return ids if ended else [tokenizer.eos_token_id, *ids]

    def act_batch(self, episodes: Sequence[_Episode], observations: Sequence[str],
                  infos: Sequence[dict[str, Any]] | None = None, *, seed: int | None = None) -> list[Completion]:
        cap = self.inner.config.max_observation_chars
        for episode, observation in zip(episodes, observations, strict=True):
            if not episode.ids:
                episode.ids = self.policy.encode([{"role": "system", "content": episode.system},
                                                  {"role": "user", "content": clip_text(observation, cap)}])
            else:
                episode.ids += self.observation_ids(clip_text(observation, cap), episode.ended)
        sampling = self.inner.config.sampling
        params = dataclasses.replace(sampling, logprobs=True, seed=sampling.seed if seed is None else seed)
        completions = self.policy.generate_ids([e.ids for e in episodes], params)
        for episode, completion in zip(episodes, completions, strict=True):
            episode.ids = [*completion.prompt_ids, *completion.completion_ids]
            episode.ended = bool(completion.completion_ids) and completion.completion_ids[-1] in self.policy.eos_ids
        return completions

    def env_action(self, completion: Completion) -> tuple[str, str | None]:
        return self.inner.env_action(completion)


def trl_sequences(trajectories: Sequence[Trajectory], *, max_completion_length: int | None = None) -> dict[str, list]:
    """TRL rollout output for token-continuous trajectories (see the module docstring).

    Raises:
        ValueError: an episode has no turns, or a turn's prompt does not extend the previous turn.
    """
    out: dict[str, list] = {k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "success",
                                            "total_reward", "turns", "task_id", "trajectory_id")}
    for traj in trajectories:
        if not traj.turns:
            raise ValueError(f"episode {traj.id} of task {traj.task_id} has no turns (aborted: {traj.info})")
        prompt = list(traj.turns[0].prompt_ids)
        ids: list[int] = []
        mask: list[int] = []
        logprobs: list[float] = []
        for k, turn in enumerate(traj.turns):
            if k:
                seen = prompt + ids
                if turn.prompt_ids[: len(seen)] != seen:
                    raise ValueError(f"turn {k} of episode {traj.id} does not extend the previous turn's tokens; "
                                     "play the episodes with TokenExactAgent")
                between = list(turn.prompt_ids[len(seen):])
                ids += between
                mask += [0] * len(between)
                logprobs += [0.0] * len(between)
            ids += turn.completion_ids
            mask += [1] * len(turn.completion_ids)
            logprobs += list(turn.logprobs or [0.0] * len(turn.completion_ids))
        if max_completion_length is not None:
            ids, mask, logprobs = ids[:max_completion_length], mask[:max_completion_length], logprobs[:max_completion_length]
        for key, value in (("prompt_ids", prompt), ("completion_ids", ids), ("logprobs", logprobs),
                           ("env_mask", mask), ("success", traj.success), ("total_reward", traj.total_reward),
                           ("turns", len(traj.turns)), ("task_id", traj.task_id), ("trajectory_id", traj.id)):
            out[key].append(value)
    return out


class SelfgymRollout:
    """``GRPOTrainer(rollout_func=SelfgymRollout(env_id, tasks))``: selfgym episodes with the trainer's weights.

    Args:
        env_id: a registered selfgym env.
        tasks: the tasks of the training prompts (as for ``task_dataset``); a prompt is matched to
            its task by the text of its last message.
        agent: prompt and sampling settings (``sampling.max_tokens`` per turn).
        rollout: engine settings (``seed``, ``max_concurrent``, ``env_workers``; one attempt per prompt).
        env_kwargs: passed to ``selfgym.make``.

    Attributes:
        trajectories: the episodes of the latest call, in prompt order.
    """

    def __init__(self, env_id: str, tasks: Sequence[Task | str] | int, *, agent: AgentConfig | None = None,
                 rollout: RolloutConfig | None = None, env_kwargs: dict[str, Any] | None = None) -> None:
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.tasks = resolve_tasks(env_id, tasks, env_kwargs=self.env_kwargs)
        self.by_prompt: dict[str, Task] = {}
        for task in self.tasks:
            self.by_prompt.setdefault(task.prompt, task)
        self.agent_config = agent or AgentConfig(sampling=SamplingParams(max_tokens=64))
        self.rollout = rollout or RolloutConfig(progress=False)
        self.trajectories: list[Trajectory] = []
        self._policy: TransformersPolicy | None = None
        self._calls = 0

    def _task(self, prompt: Any) -> Task:
        text = prompt[-1]["content"] if isinstance(prompt, list) else prompt
        if text not in self.by_prompt:
            raise KeyError(f"prompt {str(text)[:80]!r} is not the prompt of any task given to SelfgymRollout; "
                           "build the dataset with task_dataset() over the same tasks")
        return self.by_prompt[text]

    def policy(self, trainer: Any) -> TransformersPolicy:
        """A policy over the trainer's current model (made once, pointed at the model each call)."""
        model = trainer.accelerator.unwrap_model(trainer.model)
        if self._policy is None:
            self._policy = TransformersPolicy(model, trainer.processing_class,
                                              TransformersConfig(name="trl", prefix_cache_mb=0))
        self._policy.use_model(model)
        return self._policy

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        tasks = [self._task(p) for p in prompts]
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training, use_cache = model.training, model.config.use_cache
        agent = TokenExactAgent(self.policy(trainer), self.agent_config)
        config = dataclasses.replace(self.rollout, group_size=1, seed=self.rollout.seed + self._calls * len(prompts))
        self._calls += 1
        try:
            result = run_rollouts(self.env_id, agent, tasks, config, env_kwargs=self.env_kwargs)
        finally:
            model.train(was_training)
            model.config.use_cache = use_cache
        self.trajectories = result.trajectories
        return trl_sequences(result.trajectories, max_completion_length=getattr(trainer, "max_completion_length", None))


def episode_reward(completions: list[Any], total_reward: list[float], **kwargs: Any) -> list[float]:
    """TRL reward function: each episode's total reward (selfgym's verdict)."""
    return [float(r) for r in total_reward]


def success_reward(completions: list[Any], success: list[bool], **kwargs: Any) -> list[float]:
    """TRL reward function: 1 for a solved episode, else 0."""
    return [float(s) for s in success]
