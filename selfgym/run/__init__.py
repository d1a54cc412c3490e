"""The runner: rollouts, episodes, evaluation, test-time retries, chains, the gym loop, curriculum,
ablation and reports. It sits above the envs, agents, skills and trainers and wires them together;
nothing below imports it (``tests/test_layers.py``)."""
