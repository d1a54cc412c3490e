"""Agents and policies (installed as ``selfgym.agents``).

Importing this package is light: model backends load torch / transformers / openai only when a
policy is built.
"""

from __future__ import annotations

from selfgym.models import load_model, load_tokenizer, make_tiny_model, tiny_model_dir

from .base import Agent, BatchAgent, RandomAgent, ScriptedAgent, SequentialAgents, make_agent
from .factory import make_policy
from .hf import TransformersConfig, TransformersPolicy
from .llm import AgentConfig, AgentEpisode, LLMAgent
from .memory import MemoryItem, Note, Retriever, StaticMemory
from .openai_policy import OpenAIConfig, OpenAIPolicy
from .policy import Policy, PolicyError, SamplingParams
from .reflection import ReflectionConfig, ReflectionMemory, ReflectionWriter, Reflector

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentEpisode",
    "BatchAgent",
    "LLMAgent",
    "MemoryItem",
    "Note",
    "OpenAIConfig",
    "OpenAIPolicy",
    "Policy",
    "PolicyError",
    "RandomAgent",
    "ReflectionConfig",
    "ReflectionMemory",
    "ReflectionWriter",
    "Reflector",
    "Retriever",
    "SamplingParams",
    "ScriptedAgent",
    "SequentialAgents",
    "StaticMemory",
    "TransformersConfig",
    "TransformersPolicy",
    "load_model",
    "load_tokenizer",
    "make_agent",
    "make_policy",
    "make_tiny_model",
    "tiny_model_dir",
]
