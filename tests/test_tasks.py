import json

import numpy as np
import pytest

from selfgym.envs.guess import GuessTasks
from selfgym.envs.tasks import HELDOUT_SEED_BASE, ListTaskSource, load_jsonl_tasks
from selfgym.errors import ConfigError
from selfgym.types import Task


def test_procedural_splits_never_overlap_and_ids_rebuild_tasks():
    source = GuessTasks()
    train = list(source.tasks("train", limit=50))
    heldout = list(source.tasks("heldout", limit=50))
    assert not {t.id for t in train} & {t.id for t in heldout}
    assert all(t.split == "heldout" for t in heldout) and all(t.split == "train" for t in train)
    for task in train[:5] + heldout[:5]:
        assert source.get(task.id) == task
    rng = np.random.default_rng(0)
    sampled = [source.sample(rng, split="heldout") for _ in range(20)]
    assert all(int(t.id.split("/s")[1].split("/")[0]) >= HELDOUT_SEED_BASE for t in sampled)


def test_difficulty_knob_changes_the_task():
    source = GuessTasks()
    easy, hard = source.make(5, 0.0), source.make(5, 1.0)
    assert easy.payload["high"] == 8 and hard.payload["high"] == 1024


def test_list_source_samples_by_split_and_difficulty():
    tasks = [Task(id=f"t{i}", family="f", prompt="p", difficulty=i / 4, split="heldout" if i == 4 else "train")
             for i in range(5)]
    source = ListTaskSource(tasks, name="mine")
    rng = np.random.default_rng(1)
    assert source.sample(rng, split="train", difficulty=0.5).id == "t2"
    assert source.sample(rng, split="heldout").id == "t4"
    with pytest.raises(ConfigError, match="no 'generated' tasks"):
        source.sample(rng, split="generated")
    with pytest.raises(ValueError, match="duplicate"):
        ListTaskSource([tasks[0], tasks[0]])


def test_jsonl_loader_puts_extra_keys_in_payload(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "add", "tests": ["assert f(1)==2"], "entry_point": "f"}) + "\n\n"
                    + json.dumps({"id": "x", "prompt": "sub", "split": "heldout", "difficulty": 0.3}) + "\n")
    source = load_jsonl_tasks(path)
    first, second = source.get("mine/1"), source.get("x")
    assert first.payload == {"tests": ["assert f(1)==2"], "entry_point": "f"} and first.family == "mine"
    assert second.split == "heldout" and second.difficulty == 0.3
    path.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"mine.jsonl:2: not valid JSON"):
        load_jsonl_tasks(path)
