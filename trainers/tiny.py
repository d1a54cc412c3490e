"""A tiny random causal LM, a matching word-level tokenizer and token-space sampling.

For tests and benchmarks: trainers work on token ids, so a 2-layer Llama with a 64-token
vocabulary exercises every code path in seconds on a CPU, with no download. Token ``t<i>`` is id
``i``; ids 0, 1 and 2 are the pad, EOS and BOS tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from selfgym.types import Completion, Trajectory, Turn

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "PAD_ID",
    "greedy_success_rate",
    "sample_completions",
    "single_thread",
    "tiny_causal_lm",
    "tiny_tokenizer",
    "upper_half_rollouts",
]

PAD_ID, EOS_ID, BOS_ID = 0, 1, 2


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one CPU thread: a tiny model's matrices gain nothing from more, and OpenMP
    threads spinning on a busy machine can slow every step tenfold."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_causal_lm(*, vocab_size: int = 64, hidden_size: int = 32, layers: int = 2, seed: int = 0,
                   max_positions: int = 1024) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` (same ``seed``, same weights)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=max_positions, pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=BOS_ID,
        tie_word_embeddings=False, initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = PAD_ID
    return model


def tiny_tokenizer(vocab_size: int = 64) -> Any:
    """A word-level fast tokenizer whose token ``t<i>`` is id ``i`` (what TRL's trainers ask for)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={f"t{i}": i for i in range(vocab_size)}, unk_token=f"t{PAD_ID}"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=f"t{PAD_ID}", eos_token=f"t{EOS_ID}",
                                   bos_token=f"t{BOS_ID}", unk_token=f"t{PAD_ID}")


@torch.no_grad()
def sample_completions(model: Any, prompt: Sequence[int], *, n: int = 1, max_new_tokens: int = 4,
                       greedy: bool = False, temperature: float = 1.0, eos_id: int = EOS_ID) -> list[Completion]:
    """``n`` completions of ``prompt`` with the behaviour log-probability of each token.

    Sampling is from the model's full distribution at ``temperature`` (the logprobs are of that
    tempered distribution); a completion stops after its first EOS. ``text`` is the ids written
    as ``t<i>`` words.
    """
    was_training = model.training
    model.eval()
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=model.device)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=not greedy,
                         num_return_sequences=n, max_new_tokens=max_new_tokens, output_scores=True,
                         return_dict_in_generate=True, pad_token_id=PAD_ID, eos_token_id=eos_id,
                         top_k=None, top_p=None, temperature=None if greedy else temperature)
    scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    model.train(was_training)
    completions = []
    for row, logprobs in zip(out.sequences[:, ids.shape[1]:].tolist(), scores.tolist(), strict=True):
        end = row.index(eos_id) + 1 if eos_id in row else len(row)
        completions.append(Completion(text=" ".join(f"t{i}" for i in row[:end]), prompt_ids=list(prompt),
                                      completion_ids=row[:end], logprobs=logprobs[:end]))
    return completions


def upper_half_rollouts(model: Any, prompts: Sequence[Sequence[int]], *, attempts: int = 1, turns: int = 1,
                        rebuild_prompts: bool = False, greedy: bool = False,
                        feedback: Sequence[int] = (5, 6)) -> list[Trajectory]:
    """Episodes of a token-space task that a tiny model can learn.

    At each turn the agent writes up to two tokens; after a turn that is not the last, the env
    answers with the ``feedback`` tokens. The episode succeeds (reward 1 on the last turn) when the
    last completion starts with an id in the upper half of the vocabulary. Each later turn's
    prompt is the whole dialogue so far, or, with ``rebuild_prompts``, a fresh prompt of the BOS
    and feedback tokens only (an agent that drops its history).
    """
    vocab = model.get_input_embeddings().num_embeddings
    out = []
    for task, prompt in enumerate(prompts):
        for attempt in range(attempts):
            context, trajectory = list(prompt), Trajectory(task_id=f"toy-{task}", env_id="toy", attempt=attempt)
            for k in range(turns):
                completion = sample_completions(model, context, n=1, max_new_tokens=2, greedy=greedy)[0]
                last = k == turns - 1
                success = last and completion.completion_ids[0] >= vocab // 2
                trajectory.turns.append(Turn.from_completion(f"turn {k}", completion, reward=float(success)))
                if not last:
                    context = ([BOS_ID, *feedback] if rebuild_prompts
                               else context + completion.completion_ids + list(feedback))
            trajectory.success = trajectory.terminated = bool(trajectory.turns[-1].reward)
            trajectory.total_reward = trajectory.turns[-1].reward
            out.append(trajectory)
    return out


def greedy_success_rate(model: Any, prompts: Sequence[Sequence[int]], *, turns: int = 1,
                        rebuild_prompts: bool = False) -> float:
    """Share of ``prompts`` that greedy decoding solves in ``upper_half_rollouts``."""
    episodes = upper_half_rollouts(model, prompts, turns=turns, rebuild_prompts=rebuild_prompts, greedy=True)
    return sum(e.success for e in episodes) / len(episodes)
