"""The skill library end to end: verification in the real sandbox, retrieval, use, versions, snapshots."""

import subprocess
import sys

import pytest

import selfgym
from selfgym.agents.memory import Retriever
from selfgym.envs.tasks import ListTaskSource
from selfgym.errors import ConfigError
from selfgym.run.episode import run_episode
from selfgym.skills import (
    SkillCurator,
    SkillLibrary,
    SkillsConfig,
    SkillsWrapper,
    parse_candidate,
    skills_used,
    verify_candidate,
)
from selfgym.store import Store
from selfgym.types import Completion, Task


def _task(tid, name, prompt, fn, args):
    tests = [{"args": repr((a,)), "expected": repr(fn(a))} for a in args]
    return Task(id=tid, family="digits", prompt=prompt, payload={"entry_point": name, "tests": tests})


def digit_sum(n):
    return sum(int(c) for c in str(abs(n)))


TASK_A = _task("digits/a", "total_digits", "Write `total_digits(n)` returning the sum of the decimal digits of n.",
               digit_sum, [0, 7, 123, -45, 9999])
TASK_B = _task("digits/b", "square_digit_sum", "Write `square_digit_sum(n)`: the sum of the decimal digits of n squared.",
               lambda n: digit_sum(n * n), [0, 3, 12, 25, 111])
SOLUTION_A = "def total_digits(n):\n    return sum(int(c) for c in str(abs(n)))\n"
GOOD = '''Here is the helper.
```python
def digit_sum(n):
    """Sum of the decimal digits of an integer (sign ignored)."""
    return sum(int(c) for c in str(abs(n)))
```
```python
assert digit_sum(123) == 6
assert digit_sum(-45) == 9
```'''
WORDS = '''```python
def reverse_words(text):
    """Reverse the order of the words in a sentence."""
    return " ".join(text.split()[::-1])
```
```python
assert reverse_words("a b c") == "c b a"
```'''
USER_CODE = "from skills import digit_sum\n\ndef square_digit_sum(n):\n    return digit_sum(n * n)\n"


class FixedPolicy:
    """A stand-in extraction model: answers every prompt with the same text."""

    name = "fixed"

    def __init__(self, text):
        self.text, self.prompts = text, []

    def generate(self, prompts, params):
        self.prompts.extend(prompts)
        return [Completion(text=self.text) for _ in prompts]


class SkillUser:
    """A scripted agent: imports the best retrieved skill, else writes nothing useful."""

    def __init__(self, library, task):
        self.library, self.task, self.episode = library, task, None

    def reset(self, observation, info):
        class Episode:
            memory_ids = {}
        self.episode = Episode()
        self.shown = self.library.retrieve(self.task, 3)
        self.episode.memory_ids = {"skill": [s.id for s in self.shown]}

    def act(self, observation, info):
        code = USER_CODE if self.shown and self.shown[0].name == "digit_sum" else "def square_digit_sum(n):\n    return 0"
        return Completion(text=f"```python\n{code}```")


@pytest.fixture
def library(tmp_path):
    store = Store(tmp_path)
    store.create_run("r", {})
    return SkillLibrary(store, SkillsConfig(mode="read-write", reward_bonus=0.5), run_id="r")


def _env(library=None):
    env = selfgym.make("selfgym/Code-v0", task_source=ListTaskSource([TASK_A, TASK_B], name="digits"))
    return SkillsWrapper(env, library) if library is not None else env


def test_a_verified_skill_is_retrieved_for_a_related_task_and_used(library):
    sandbox = _env().unwrapped.sandbox
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=sandbox)
    for text in (GOOD, WORDS):
        candidate = parse_candidate(text)
        assert verify_candidate(sandbox, candidate, task=TASK_A, solution=SOLUTION_A) is None
        assert curator.add_verified(candidate, source_task_id=TASK_A.id) == "added"
    assert isinstance(library, Retriever)
    assert [s.name for s in library.retrieve(TASK_B, 3)] == ["digit_sum"]  # words share nothing with the task
    env = _env(library)
    traj = run_episode(env, SkillUser(library, TASK_B), task=TASK_B)
    assert traj.success and traj.total_reward == 1.5  # success + the skill-integrated bonus
    assert traj.memory == {"skill": ["skill:digit_sum@v1"]}
    assert traj.turns[-1].info["skills_used"] == ["digit_sum"] and traj.turns[-1].info["skill_bonus"] == 0.5
    # the same code without the library: no module `skills` in the sandbox
    plain = run_episode(_env(), SkillUser(library, TASK_B), task=TASK_B)
    assert not plain.success and "skills" in plain.turns[-1].observation


def test_signature_presentation_shows_how_to_import_a_skill_not_its_body(library, tmp_path):
    sandbox = _env().unwrapped.sandbox
    assert SkillCurator(library, FixedPolicy(GOOD), sandbox=sandbox).add_verified(
        parse_candidate(GOOD), source_task_id=TASK_A.id) == "added"
    assert "str(abs(n))" in library.retrieve(TASK_B, 3)[0].text  # the default shows the code
    shown = SkillLibrary(library.store, SkillsConfig(mode="read-only", presentation="signature"),
                         run_id="r").retrieve(TASK_B, 3)
    text = shown[0].text
    assert text.startswith("digit_sum(n): Sum of the decimal digits") and "str(abs(n))" not in text
    assert "from skills import digit_sum" in text and shown[0].id == "skill:digit_sum@v1"
    assert "presentation" not in library.store.memory("skill")[-1]  # how it is shown is not stored
    # the worked example runs as written against the library's module
    (tmp_path / "skills.py").write_text(library.module_source())
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(example + "\nassert solve(-45) == 9\n")
    subprocess.run([sys.executable, "example.py"], cwd=tmp_path, check=True)
    with pytest.raises(ConfigError, match="presentation"):
        SkillsConfig(presentation="full")


def test_a_candidate_whose_tests_fail_never_enters(library):
    sandbox = _env().unwrapped.sandbox
    wrong = GOOD.replace("assert digit_sum(123) == 6", "assert digit_sum(123) == 7")
    reason = verify_candidate(sandbox, parse_candidate(wrong), task=TASK_A, solution=SOLUTION_A)
    assert reason and reason.startswith("its own tests failed")
    breaks_task = GOOD.replace("def digit_sum(n):", "def total_digits(n):").replace("digit_sum(", "total_digits(")
    breaks_task = breaks_task.replace("str(abs(n))", "str(n)").replace("assert total_digits(-45) == 9", "")
    reason = verify_candidate(sandbox, parse_candidate(breaks_task), task=TASK_A, solution=SOLUTION_A)
    assert reason and "task" in reason  # passes its own test, shadows the solution and fails the task's
    from selfgym.types import Trajectory, Turn

    traj = Trajectory(env_id="selfgym/Code-v0", task_id=TASK_A.id, turns=[Turn(observation="", action=f"```python\n{SOLUTION_A}```")],
                      success=True)
    curator = SkillCurator(library, FixedPolicy(wrong), sandbox=sandbox)
    metrics = curator.update([traj], {TASK_A.id: TASK_A})
    assert metrics["skills/proposed"] == 1 and metrics["skills/rejected"] == 1 and metrics["skills/added"] == 0
    assert library.skills() == [] and metrics["skills/size"] == 0
    assert "digit_sum" not in library.module_source()
    assert curator.rejections[0][1].startswith("its own tests failed")


def test_a_near_duplicate_merges_into_a_new_version(library):
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)
    assert curator.add_verified(parse_candidate(GOOD)) == "added"
    twin = GOOD.replace("digit_sum", "sum_of_digits").replace("(sign ignored)", "ignoring the sign")
    assert curator.add_verified(parse_candidate(twin)) == "merged"
    skill = library.get("digit_sum")
    assert skill.version == 2 and "ignoring the sign" in skill.description and "sum_of_digits" not in skill.code
    assert [v.version for v in library.versions("digit_sum")] == [1, 2]
    assert [s.name for s in library.skills()] == ["digit_sum"]


def test_snapshots_are_reproducible_and_read_only(library, tmp_path):
    curator = SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox)
    curator.add_verified(parse_candidate(GOOD))
    library.record_usage({"digit_sum": (5, 1)})
    snap = library.snapshot("ckpt-1")
    curator.add_verified(parse_candidate(WORDS))
    curator.update([], {})  # 1/5 successes when used: retired
    assert [s.name for s in library.skills()] == ["reverse_words"]
    pinned = [SkillLibrary(Store(tmp_path), run_id="r", snapshot=snap) for _ in range(2)]
    assert pinned[0].skills() == pinned[1].skills()
    assert [(s.name, s.uses, s.successes) for s in pinned[0].skills()] == [("digit_sum", 5, 1)]
    assert pinned[0].module_source() == pinned[1].module_source() and "digit_sum" in pinned[0].module_source()
    assert library.snapshots()[0]["checkpoint_id"] == "ckpt-1"
    with pytest.raises(ConfigError, match="read-only"):
        pinned[0].add(library.get("reverse_words"))
    with pytest.raises(ConfigError, match="no skill snapshot"):
        SkillLibrary(Store(tmp_path), run_id="r", snapshot="skills-nope")


def test_usage_is_read_from_imports_only():
    names = ["digit_sum", "reverse_words"]
    assert skills_used(USER_CODE, names) == ["digit_sum"]
    assert skills_used("import skills\nx = skills.reverse_words('a b')", names) == ["reverse_words"]
    assert skills_used("def digit_sum(n):\n    return 1", names) == []  # its own function, not the library's
    assert skills_used("from skills import *", names) == names
    assert skills_used("def broken(:", names) == []


def test_a_verbatim_copy_of_a_skill_counts_as_a_use():
    library = {"digit_sum": parse_candidate(GOOD).code, "reverse_words": parse_candidate(WORDS).code}
    copied = "def digit_sum(n: int) -> int:\n    return sum(int(c) for c in str(abs(n)))\n\ndef f(n):\n    return digit_sum(n)"
    assert skills_used(copied, library) == ["digit_sum"]  # docstring and annotations aside, the same function
    assert skills_used(copied, list(library)) == []  # names only: imports only
    changed = copied.replace("abs(n)", "n")
    assert skills_used(changed, library) == []


def test_cli_lists_and_shows_the_library(library, tmp_path):
    SkillCurator(library, FixedPolicy(GOOD), sandbox=_env().unwrapped.sandbox).add_verified(
        parse_candidate(GOOD), source_task_id="digits/a")
    library.record_usage({"digit_sum": (4, 3)})
    library.store.create_run("loop", {"trainer": {}}, kind="loop")
    run = [sys.executable, "-m", "selfgym.cli", "skills"]
    out = subprocess.run([*run, "list", str(tmp_path), "--run", "r"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "digit_sum" in out.stdout and "0.75" in out.stdout and "1 skills" in out.stdout
    out = subprocess.run([*run, "show", str(tmp_path), "digit_sum", "--run", "r"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "assert digit_sum(123) == 6" in out.stdout and "from task digits/a" in out.stdout
    out = subprocess.run([*run, "show", str(tmp_path), "nope", "--run", "r"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "no skill 'nope'" in out.stderr and "digit_sum" in out.stderr
