"""``selfgym view``: a local web app to look inside run stores (read-only).

Pages: runs, a run's timeline, a filterable trajectory table, a trajectory turn by turn with its
token log-probabilities, two attempts compared, skills with their versions, the teacher's lineage
of generated tasks, and paired comparisons of evaluations. See ``selfgym.view.app``.
"""

from selfgym.view.app import create_app, serve

__all__ = ["create_app", "serve"]
