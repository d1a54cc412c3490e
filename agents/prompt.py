"""The LLM agent's prompt format and action extraction (pure functions, tested like code).

A prompt is a chat::

    system:    <system prompt>
               # Instructions   <the env's instructions for this task>
               # Tools          <one JSON schema a line>
               # Skills you can reuse / # Lessons from earlier attempts   <retrieved memory>
    user:      <first observation: the task>
    assistant: <first reply>
    user:      <next observation>
    ...
    user:      <current observation>

Sections with nothing in them are left out. When the chat is over the token budget, the oldest
exchanges after the first are dropped, a few at a time (the task stays; the next kept observation
says how many turns were left out); if that is not enough, long observations are cut in the middle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from .memory import MemoryItem

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "TAG_INSTRUCTION",
    "ActionFormat",
    "build_messages",
    "clip_text",
    "extract_action",
    "fit_to_budget",
    "system_message",
]

ActionFormat = Literal["text", "tag"]

DEFAULT_SYSTEM_PROMPT = (
    "You are an agent solving a task in an environment. Each user message is what the environment "
    "shows you; each of your replies is one action. Follow the action format exactly."
)
TAG_INSTRUCTION = "Think briefly if you need to, then put your action inside <action></action> tags."
SECTION_TITLES = {"skill": "Skills you can reuse", "reflection": "Lessons from earlier attempts"}
_ACTION_TAG = re.compile(r"<action>(.*?)</action>", re.DOTALL)
MIN_CLIP_CHARS = 256


def clip_text(text: str, max_chars: int) -> str:
    """``text`` cut in the middle to at most about ``max_chars`` characters, saying how much was cut."""
    if len(text) <= max_chars:
        return text
    half = max(1, max_chars // 2)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _memory_section(kind: str, items: Sequence[MemoryItem]) -> str:
    title = SECTION_TITLES.get(kind, f"{kind.capitalize()}s")
    if kind == "skill":
        body = "\n\n".join(f"## {item.id}\n{item.text.strip()}" for item in items)
    else:
        body = "\n".join(f"- {' '.join(item.text.split())}" for item in items)
    return f"# {title}\n{body}"


def system_message(
    system_prompt: str,
    instructions: str = "",
    tools: Sequence[Mapping[str, Any]] = (),
    memory: Mapping[str, Sequence[MemoryItem]] | None = None,
    action_format: ActionFormat = "text",
) -> str:
    """The system message: the agent's prompt, the env's instructions and tools, retrieved memory."""
    parts = [system_prompt.strip()]
    if action_format == "tag":
        parts.append(TAG_INSTRUCTION)
    if instructions.strip():
        parts.append(f"# Instructions\n{instructions.strip()}")
    if tools:
        lines = "\n".join(json.dumps(tool, sort_keys=True) for tool in tools)
        parts.append(f"# Tools\nCall a tool by replying with JSON naming it and its arguments. Tools:\n{lines}")
    for kind, items in (memory or {}).items():
        if items:
            parts.append(_memory_section(kind, items))
    return "\n\n".join(p for p in parts if p)


def build_messages(
    system: str,
    history: Sequence[tuple[str, str]],
    observation: str,
    *,
    drop: int = 0,
    max_chars: int | None = None,
) -> list[dict[str, str]]:
    """The chat for the next action.

    Args:
        history: the episode so far as ``(observation, reply)`` pairs.
        drop: leave out this many exchanges after the first (the oldest ones).
        max_chars: cut every observation to this many characters.
    """
    def obs(text: str) -> str:
        return clip_text(text, max_chars) if max_chars else text

    drop = min(drop, max(0, len(history) - 1))
    messages = [{"role": "system", "content": system}] if system else []
    kept = list(history[:1]) + list(history[1 + drop:])
    note = f"[{drop} earlier turn{'s' if drop != 1 else ''} left out]\n" if drop else ""
    for position, (seen, reply) in enumerate(kept):
        prefix = note if drop and position == 1 else ""
        messages.append({"role": "user", "content": prefix + obs(seen)})
        messages.append({"role": "assistant", "content": reply})
    last_prefix = note if drop and len(kept) == 1 else ""
    messages.append({"role": "user", "content": last_prefix + obs(observation)})
    return messages


def fit_to_budget(
    system: str,
    history: Sequence[tuple[str, str]],
    observation: str,
    count_tokens: Callable[[list[dict[str, str]]], int],
    budget: int,
    drop_step: int = 1,
) -> list[dict[str, str]]:
    """The chat for the next action within ``budget`` prompt tokens, dropping and cutting as little as it can.

    Returns the smallest change that fits, or the most trimmed chat if nothing fits (a system
    prompt alone can exceed a tiny budget; the backend then reports the overflow). Exchanges are
    dropped ``drop_step`` at a time: the count of dropped exchanges is rounded up to a multiple of
    it, so as a dialogue grows past the budget its trimmed prompt stays an extension of the last
    one for several turns (a backend reusing the keys of the previous prompt then prefills only the
    new turn; dropping one exchange a turn would change the prompt right after the task every turn).
    """
    messages = build_messages(system, history, observation)
    if count_tokens(messages) <= budget:
        return messages
    low, high = 1, max(0, len(history) - 1)
    while low < high:  # fewest dropped exchanges that fit
        mid = (low + high) // 2
        if count_tokens(build_messages(system, history, observation, drop=mid)) <= budget:
            high = mid
        else:
            low = mid + 1
    high = min(-(-high // drop_step) * drop_step, max(0, len(history) - 1))
    messages = build_messages(system, history, observation, drop=high)
    longest = max(len(m["content"]) for m in messages if m["role"] == "user")
    max_chars = longest
    while count_tokens(messages) > budget and max_chars > MIN_CLIP_CHARS:
        max_chars = max(MIN_CLIP_CHARS, max_chars // 2)
        messages = build_messages(system, history, observation, drop=high, max_chars=max_chars)
    return messages


def extract_action(text: str, action_format: ActionFormat) -> tuple[str, str | None]:
    """The action to send to the env, and why extraction failed (None if it did not).

    ``text``: the reply as it is. ``tag``: the content of the last ``<action>...</action>``; a
    reply without one is sent as it is, so the env answers it with its own error.
    """
    if action_format == "text":
        return text, None
    found = _ACTION_TAG.findall(text)
    if not found:
        return text, "no <action>...</action> in the reply"
    return found[-1].strip(), None
