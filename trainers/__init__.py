"""Trainers (installed as ``selfgym.trainers``)."""
