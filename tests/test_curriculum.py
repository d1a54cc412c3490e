"""The curriculum moves sampling toward arms where a simulated student is learning."""

import numpy as np
import pytest

from selfgym.run.curriculum import Arm, Curriculum, CurriculumConfig


class SimulatedStudent:
    """Per-arm success probability as a function of how often the arm was practised."""

    def __init__(self):
        self.practice = {"learnable@0.50": 0, "too_hard@1.00": 0, "mastered@0.00": 0}

    def p(self, key):
        if key == "mastered@0.00":
            return 1.0
        if key == "too_hard@1.00":
            return 0.0
        return min(0.95, 0.05 + 0.004 * self.practice[key])  # improves with practice

    def attempt(self, key, rng):
        self.practice[key] += 1
        return bool(rng.random() < self.p(key))


def _run(config, iterations=15, batch=30, seed=0):
    rng = np.random.default_rng(seed)
    arms = [Arm("learnable", 0.5), Arm("too_hard", 1.0), Arm("mastered", 0.0)]
    curriculum = Curriculum(arms, config)
    student = SimulatedStudent()
    picks = {a.key: 0 for a in arms}
    for it in range(iterations):
        chosen = curriculum.sample(batch, rng)
        outcomes = [(a.key, student.attempt(a.key, rng)) for a in chosen]
        curriculum.update(it, outcomes)
        if it >= 3:
            for a in chosen:
                picks[a.key] += 1
    return curriculum, student, picks


def test_sampling_shifts_toward_the_arm_with_learning_progress():
    curriculum, student, picks = _run(CurriculumConfig())
    probs = curriculum.probabilities()
    assert probs["learnable@0.50"] > 0.6
    assert probs["learnable@0.50"] > 3 * max(probs["too_hard@1.00"], probs["mastered@0.00"])
    assert picks["learnable@0.50"] > picks["too_hard@1.00"] + picks["mastered@0.00"]
    _, uniform_student, _ = _run(CurriculumConfig(enabled=False))
    # the student learns the learnable arm faster under the curriculum than under uniform sampling
    assert student.p("learnable@0.50") > uniform_student.p("learnable@0.50")


def test_untried_arms_are_tried_first_and_state_roundtrips():
    curriculum = Curriculum([Arm("a", 0.0), Arm("b", 0.5)], CurriculumConfig(epsilon=0.0))
    curriculum.update(0, [("a@0.00", True), ("a@0.00", False)])
    probs = curriculum.probabilities()
    assert probs["b@0.50"] > probs["a@0.00"]
    curriculum.add_arm(Arm("generated/x", 0.25))
    restored = Curriculum([], curriculum.config)
    restored.load_state_dict(curriculum.state_dict())
    assert restored.probabilities() == pytest.approx(curriculum.probabilities())
    with pytest.raises(KeyError, match="unknown arm"):
        curriculum.update(1, [("zzz@0.00", True)])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="curriculum.epsilon"):
        CurriculumConfig(epsilon=2.0)
