"""The curriculum's WebRL band option: arms inside the band of useful difficulty get the samples."""

from __future__ import annotations

import numpy as np
import pytest

from selfgym.run.curriculum import Arm, Curriculum, CurriculumConfig

# a student whose success rate per generated-task difficulty bin is fixed (no learning): only the
# learnability term tells the arms apart
RATES = {"generated@0.10": 0.97, "generated@0.50": 0.55, "generated@0.70": 0.3, "generated@0.90": 0.02}


def run(config: CurriculumConfig, iterations: int = 8, batch: int = 40, seed: int = 0) -> Curriculum:
    rng = np.random.default_rng(seed)
    curriculum = Curriculum([Arm("generated", d) for d in (0.1, 0.5, 0.7, 0.9)], config)
    for it in range(iterations):
        chosen = curriculum.sample(batch, rng)
        curriculum.update(it, [(a.key, bool(rng.random() < RATES[a.key])) for a in chosen])
    return curriculum


def test_band_puts_the_mass_inside_the_band():
    probs = run(CurriculumConfig(learnability="band", band_lo=0.2, band_hi=0.8, learnability_weight=1.0,
                                 epsilon=0.1)).probabilities()
    inside = probs["generated@0.50"] + probs["generated@0.70"]
    assert inside > 0.85
    assert probs["generated@0.50"] == pytest.approx(probs["generated@0.70"])  # the band is flat inside
    assert probs["generated@0.10"] == pytest.approx(0.1 / 4)  # outside: exploration only


def test_variance_prefers_the_arm_nearest_one_half():
    probs = run(CurriculumConfig(learnability_weight=1.0, epsilon=0.1)).probabilities()
    assert probs["generated@0.50"] > probs["generated@0.70"] > probs["generated@0.90"]


def test_band_config_is_checked():
    with pytest.raises(ValueError, match="band_lo <= band_hi"):
        CurriculumConfig(learnability="band", band_lo=0.9, band_hi=0.1)
    with pytest.raises(ValueError, match="'variance' or 'band'"):
        CurriculumConfig(learnability="4p")  # type: ignore[arg-type]
