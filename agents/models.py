"""Moved to ``selfgym.models`` (core: trainers and agents both load weights through it); this name
stays importable."""

from selfgym.models import *  # noqa: F403
from selfgym.models import __all__  # noqa: F401
