"""selfgym envs inside TRL's real GRPOTrainer: environment_factory (Tools-v0) and rollout_func (Code-v0)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

import selfgym
from selfgym.agents.base import ScriptedAgent
from selfgym.agents.llm import AgentConfig
from selfgym.envs.tools.calls import FinalAnswer, parse_tool_action
from selfgym.integrations.trl import environment_factory, resolve_tasks, task_dataset, tool_calling_tokenizer
from selfgym.integrations.trl_rollout import SelfgymRollout, episode_reward
from selfgym.models import tiny_model_dir
from selfgym.run.rollout import RolloutConfig, run_rollouts
from selfgym.types import SamplingParams

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _config(tmp_path, **kw):
    return GRPOConfig(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=2, num_generations=2,
                      max_steps=2, logging_steps=1, report_to=[], save_strategy="no", learning_rate=1e-3,
                      dataloader_num_workers=0, seed=0, gradient_checkpointing=False, **kw)


def _model_and_tokenizer():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(), padding_side="left")
    return model, tokenizer


def test_tool_methods_replay_the_oracle_to_the_same_verdict_as_selfgym():
    tasks = resolve_tasks("selfgym/Tools-v0", 3)
    cls = environment_factory("selfgym/Tools-v0", tasks=tasks)
    expected = run_rollouts("selfgym/Tools-v0", ScriptedAgent, tasks, RolloutConfig(progress=False))
    for task, traj in zip(tasks, expected.trajectories, strict=True):
        env = cls()
        assert env.reset(prompt=[{"role": "user", "content": task.prompt}], task_id=task.id) is None
        oracle = selfgym.make("selfgym/Tools-v0")
        oracle.reset(options={"task": task.id})
        while not env.done:
            action = oracle.unwrapped.oracle_action()
            oracle.step(action)
            parsed = parse_tool_action(action)
            if isinstance(parsed, FinalAnswer):
                env.answer(answer=parsed.text)
            else:
                for call in parsed:
                    getattr(env, call.name)(**call.arguments)
        oracle.close()
        assert env.get_reward() == traj.total_reward == 1.0 and env.success is traj.success is True


@pytest.mark.slow
def test_grpo_trainer_runs_tools_env_through_environment_factory(tmp_path):
    tasks = resolve_tasks("selfgym/Tools-v0", 1)  # one family: few tools, a short prompt
    base = environment_factory("selfgym/Tools-v0", tasks=tasks)
    verdicts: list[float] = []

    class Recorded(base):  # type: ignore[misc, valid-type]
        def get_reward(self) -> float:
            verdicts.append(super().get_reward())
            return verdicts[-1]

    model, tokenizer = _model_and_tokenizer()
    trainer = GRPOTrainer(model, args=_config(tmp_path / "out", max_completion_length=16,
                                                   max_tool_calling_iterations=2),
                          train_dataset=task_dataset("selfgym/Tools-v0", [t.id for t in tasks]),
                          processing_class=tool_calling_tokenizer(tokenizer), environment_factory=Recorded)
    trainer.train()
    assert trainer.state.global_step == 2
    logged = [h["rewards/Recorded/mean"] for h in trainer.state.log_history if "rewards/Recorded/mean" in h]
    assert len(logged) == 2 and len(verdicts) == 4
    for step, mean in enumerate(logged):
        assert math.isclose(mean, sum(verdicts[2 * step: 2 * step + 2]) / 2)


class _Recording(SelfgymRollout):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[list, dict]] = []

    def __call__(self, prompts, trainer):
        out = super().__call__(prompts, trainer)
        self.calls.append((list(self.trajectories), out))
        return out


@pytest.mark.slow
def test_grpo_trainer_runs_code_env_through_rollout_func(tmp_path):
    tasks = resolve_tasks("selfgym/Code-v0", 2)
    rollout = _Recording("selfgym/Code-v0", tasks, agent=AgentConfig(sampling=SamplingParams(max_tokens=16)),
                         env_kwargs={"max_episode_steps": 3})
    model, tokenizer = _model_and_tokenizer()
    trainer = GRPOTrainer(model, reward_funcs=episode_reward, args=_config(tmp_path / "out", max_completion_length=64),
                          train_dataset=task_dataset("selfgym/Code-v0", tasks), processing_class=tokenizer,
                          rollout_func=rollout)
    trainer.train()
    assert trainer.state.global_step == 2 and len(rollout.calls) == 2
    logged = [h["rewards/episode_reward/mean"] for h in trainer.state.log_history if "rewards/episode_reward/mean" in h]
    for mean, (trajectories, _) in zip(logged, rollout.calls, strict=True):
        assert math.isclose(mean, sum(t.total_reward for t in trajectories) / len(trajectories))
    multi_turn = 0
    for trajectories, out in rollout.calls:
        for k, traj in enumerate(trajectories):
            ids, mask = out["completion_ids"][k], out["env_mask"][k]
            assert out["turns"][k] == len(traj.turns) and out["success"][k] is traj.success
            # The unmasked tokens are the agent's completions, the masked ones each next observation.
            spans: list[tuple[int, list[int]]] = []
            for token, m in zip(ids, mask, strict=True):
                if spans and spans[-1][0] == m:
                    spans[-1][1].append(token)
                else:
                    spans.append((m, [token]))
            agent = [s for m, s in spans if m == 1]
            observed = [s for m, s in spans if m == 0]
            cut = len(ids) == trainer.max_completion_length
            assert len(agent) == len(traj.turns) or cut
            for span, turn in zip(agent, traj.turns, strict=False):
                assert span == turn.completion_ids[: len(span)]
            for span, turn in zip(observed, traj.turns[1:], strict=False):
                assert span == turn.prompt_ids[len(turn.prompt_ids) - len(span):] or cut
                if not cut:
                    assert turn.observation.strip()[:40] in tokenizer.decode(span)
            multi_turn += len(traj.turns) > 1
    assert multi_turn, "no multi-turn episode was played"


def test_rollout_prompt_must_come_from_its_tasks():
    rollout = SelfgymRollout("selfgym/Code-v0", 1)
    with pytest.raises(KeyError, match="task_dataset"):
        rollout._task([{"role": "user", "content": json.dumps("not a task")}])


def test_tool_calling_tokenizer_renders_and_parses_tool_calls():
    from trl.chat_template_utils import is_chat_template_prefix_preserving, supports_tool_calling

    _, tokenizer = _model_and_tokenizer()
    assert not supports_tool_calling(tokenizer)  # SmolLM2's own template
    tokenizer = tool_calling_tokenizer(tokenizer)
    assert supports_tool_calling(tokenizer) and is_chat_template_prefix_preserving(tokenizer)
    reply = '<tool_call>\n{"name": "submit", "arguments": {"code": "print(1)"}}\n</tool_call><|im_end|>'
    parsed = tokenizer.parse_response(reply, prefix="<|im_start|>assistant\n")
    assert parsed["tool_calls"][0]["function"] == {"name": "submit", "arguments": {"code": "print(1)"}}
