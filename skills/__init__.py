"""Skill library (installed as ``selfgym.skills``)."""
