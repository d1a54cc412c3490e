"""Agents and policies (installed as ``selfgym.agents``)."""

from __future__ import annotations

from .base import Agent, RandomAgent, ScriptedAgent, make_agent

__all__ = ["Agent", "RandomAgent", "ScriptedAgent", "make_agent"]
