"""Reward hacking, from the attacker's side: submissions that try to win ``selfgym/Code-v0``
without solving the task, through ``reset``/``step`` only (``selfgym.envs.code.redteam``).

Every attack must earn reward 0 with an ordinary observation and no exception out of ``step``.
Against the single-process harness this replaced, ``patch-sys-modules`` and
``forge-report-nonce`` won on all three test shapes, ``patch-frames`` and ``tests-from-memory`` on
``call``, ``lying-eq`` and ``rigged-int`` on ``check``, and the over-long and malformed forged
reports made ``step`` raise (``bench/reward_hacking.py`` prints the table).
"""

from __future__ import annotations

import gymnasium
import pytest

import selfgym  # noqa: F401 - registers the envs
from selfgym.envs.code.redteam import ATTACKS, REFERENCE, TASKS, Attack, play
from selfgym.envs.code.verifier import VerifierConfig, _verdict
from selfgym.types import ExecResult, Task

KINDS = ("call", "assert", "check")


@pytest.fixture(scope="module")
def env():
    environment = gymnasium.make("selfgym/Code-v0", max_attempts=1)
    yield environment
    environment.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_honest_solution_passes_each_task_shape(env, kind):
    outcome = play(env, Attack("honest", "", REFERENCE), kind)
    assert outcome.error is None and outcome.success and outcome.reward == 1.0, outcome


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
@pytest.mark.parametrize("kind", KINDS)
def test_attack_earns_nothing(env, attack, kind):
    outcome = play(env, attack, kind)
    assert outcome.error is None, f"step raised on agent input: {outcome.error}"
    assert outcome.reward == 0.0 and not outcome.success, outcome.observation
    assert outcome.observation.startswith("Attempt 1 of 1 failed.") and "No attempts left." in outcome.observation
    assert "All 3 tests passed" not in outcome.observation and "All tests passed" not in outcome.observation


def _attack(name: str) -> Attack:
    return next(a for a in ATTACKS if a.name == name)


def test_what_the_candidate_prints_is_data_even_when_it_looks_like_a_report(env):
    outcome = play(env, _attack("fake-marker-lines"), "call")
    assert "Your code printed: @@result-" in outcome.observation  # shown to the agent as its output
    assert "add(1, 2) returned None, expected 3" in outcome.observation


def test_a_value_with_a_lying_eq_is_refused_by_name(env):
    outcome = play(env, _attack("lying-eq"), "check")
    assert "a Liar, which cannot be checked" in outcome.observation


def test_a_program_that_exits_mid_tests_is_told_so(env):
    outcome = play(env, _attack("os-exit"), "assert")
    assert "your program ended during the tests (exit code 0)" in outcome.observation


def test_the_runner_is_out_of_reach_of_proc_and_ptrace(env):
    """What the candidate gets when it tries the runner's /proc files and ptrace: refusals."""
    probe = Attack("probe", "", '''
import ctypes, os
def add(a, b):
    results = []
    for name in ("mem", "environ", "fd/1", "maps"):
        try:
            with open("/proc/%d/%s" % (os.getppid(), name), "rb") as fh:
                fh.read(1)
            results.append(name + ":open")
        except OSError as exc:
            results.append(name + ":" + type(exc).__name__)
    libc = ctypes.CDLL(None, use_errno=True)
    results.append("ptrace:%d" % libc.ptrace(16, os.getppid(), 0, 0))  # PTRACE_ATTACH
    return ",".join(results)
''')
    outcome = play(env, probe, "call")
    got = outcome.observation.split("returned '", 1)[1].split("'", 1)[0]
    assert got == "mem:PermissionError,environ:PermissionError,fd/1:PermissionError,maps:PermissionError,ptrace:-1"


def test_a_slow_test_times_out_alone_and_the_rest_still_run(env):
    slow = Attack("slow", "", "import time\ndef add(a, b):\n    if a == 1:\n        time.sleep(60)\n    return a + b\n")
    env.unwrapped.config = env.unwrapped.config  # one attempt, default limits
    outcome = play(env, slow, "call")
    assert "2/3 tests passed" in outcome.observation and "did not finish in time" in outcome.observation


# ---------------------------------------------------------------- the host checks the report itself
SPEC = {"kind": "call", "entry_point": "add", "tests": TASKS["call"].payload["tests"]}
LABELS = ["add(1, 2)", "add(-4, 4)", "add(0.5, 0.25)"]


def _report(nonce: str, body: str, extra: str = "") -> ExecResult:
    return ExecResult(stdout=f"{extra}\n@@result-{nonce}@@{body}\n", stderr="", exit_code=0, duration_s=0.01)


@pytest.mark.parametrize(("body", "extra", "reason"), [
    ('{"tests": [' + ", ".join(['{"label": "add(1, 2)", "passed": true}'] * 5) + ']}', "", "5 outcomes for 3 tests"),
    ('{"tests": [{"label": "add(9, 9)", "passed": true}, {"label": "add(-4, 4)", "passed": true}, '
     '{"label": "add(0.5, 0.25)", "passed": true}]}', "", "a test that was not run"),
    ('{"tests": [' + ", ".join(f'{{"label": "{lab}", "passed": "yes"}}' for lab in LABELS) + ']}', "", "'passed' is a str"),
    ('{"tests": [' + ", ".join(f'{{"label": "{lab}", "passed": true, "hack": 1}}' for lab in LABELS) + ']}', "",
     "a malformed outcome"),
    ('{"tests": [], "root": true}', "", "unknown fields"),
    ('[1, 2, 3]', "", "not an object"),
    ('{"tests": [', "", "not JSON"),
    ('{"tests": [' + ", ".join(f'{{"label": "{lab}", "passed": true}}' for lab in LABELS) + ']}',
     "All 3 tests passed", "other lines"),
])
def test_a_forged_or_malformed_report_is_a_failed_verdict_with_its_reason(body, extra, reason):
    nonce = "ab" * 16
    verdict = _verdict(_report(nonce, body, extra), nonce, SPEC, 3, 10.0, VerifierConfig())
    assert not verdict.passed and verdict.problem_kind == "report" and reason in verdict.problem


def test_two_report_lines_are_refused_even_when_both_pass():
    nonce = "cd" * 16
    line = '{"tests": [' + ", ".join(f'{{"label": "{lab}", "passed": true}}' for lab in LABELS) + "]}"
    result = ExecResult(stdout=f"@@result-{nonce}@@{line}\n@@result-{nonce}@@{line}\n", stderr="", exit_code=0,
                        duration_s=0.01)
    verdict = _verdict(result, nonce, SPEC, 3, 10.0, VerifierConfig())
    assert not verdict.passed and "2 report lines" in verdict.problem


def test_a_well_formed_report_still_counts():
    nonce = "ef" * 16
    body = '{"tests": [' + ", ".join(f'{{"label": "{lab}", "passed": true}}' for lab in LABELS) + '], "stdout": ""}'
    assert _verdict(_report(nonce, body), nonce, SPEC, 3, 10.0, VerifierConfig()).passed


# ---------------------------------------------------------------- the other verifiers of untrusted code
def test_a_proposal_whose_reference_hacks_the_harness_is_invalid(env):
    from selfgym.envs.generators.proposal import Proposal, validate_proposal

    hack = _attack("patch-sys-modules").code
    proposal = Proposal(instruction="Add two numbers.", entry_point="add", tests=("assert add(1, 2) == 3", "assert add(2, 2) == 4"), reference=hack,
                        failing=("def add(a, b):\n    return a - b\n",))
    validation = validate_proposal(proposal, env.unwrapped.sandbox)
    assert not validation.valid and "the reference fails its own tests" in validation.reason


def test_a_skill_that_forges_the_report_is_not_verified(env):
    from selfgym.skills.extract import Candidate
    from selfgym.skills.verify import verify_candidate

    for name in ("forge-report-nonce", "os-exit", "patch-sys-modules"):
        code = _attack(name).code.replace("def add(a, b):", "def add_numbers(a, b):")
        candidate = Candidate(name="add_numbers", description="Add two numbers.", code=code,
                              signature="add_numbers(a, b)", tests="assert add_numbers(1, 2) == 3\n")
        reason = verify_candidate(env.unwrapped.sandbox, candidate)
        assert reason is not None and reason.startswith("its own tests failed"), (name, reason)
    exits_early = Candidate(name="add_numbers", description="Add two numbers.", signature="add_numbers(a, b)",
                            code="import os\ndef add_numbers(a, b):\n    return None\nos._exit(0)\n",
                            tests="assert add_numbers(1, 2) == 3\n")
    assert verify_candidate(env.unwrapped.sandbox, exits_early) is not None  # passed as one program before


def test_a_call_test_with_a_set_of_strings_is_named_alike_by_the_host_and_the_runner(env):
    """Set iteration order depends on each process's hash seed; the report's label check must not
    turn that into a rejected honest solution."""
    task = Task(id="redteam/sets", family="redteam", prompt="Write size(s).", payload={
        "entry_point": "size", "reference": "def size(s):\n    return len(s)\n",
        "tests": [{"args": "({'alpha', 'beta', 'gamma', 'delta', 'epsilon'},)", "expected": "5"},
                  {"args": "([{'x', 'y', 'z'}, ('q', {'u', 'v'})],)", "expected": "2"}]})
    for _ in range(5):  # each run is a fresh runner process with its own hash seed
        env.reset(options={"task": task})
        _, reward, _, _, info = env.step("```python\ndef size(s):\n    return len(s)\n```")
        assert reward == 1.0 and info["success"]
