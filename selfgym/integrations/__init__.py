"""selfgym envs inside other trainers, and their envs inside selfgym. One module per peer:

- ``selfgym.integrations.trl``: ``GRPOTrainer(environment_factory=...)`` adapters, a task dataset
  builder and a tool-calling chat template for the embedded model;
  ``selfgym.integrations.trl_rollout``: a ``rollout_func`` whose multi-turn episodes are played
  by selfgym's rollout engine with the trainer's weights.

The modules import their peer on import; this package imports nothing, so ``import selfgym``
never needs a peer installed.
"""
