from dataclasses import dataclass, field
from typing import Literal

import pytest

from selfgym.config import describe, from_dict, load_toml, to_dict
from selfgym.errors import ConfigError
from selfgym.run.curriculum import CurriculumConfig


@dataclass(frozen=True, kw_only=True)
class Inner:
    lr: float = field(default=1e-4, metadata={"help": "learning rate"})
    kind: Literal["rft", "grpo"] = field(default="rft", metadata={"help": "trainer"})


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str = field(metadata={"help": "run name"})
    families: list[str] = field(default_factory=list, metadata={"help": "task families"})
    trainer: Inner = field(default_factory=Inner, metadata={"help": "trainer settings"})
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig, metadata={"help": "curriculum"})
    seed: int | None = field(default=None, metadata={"help": "seed"})


def test_toml_maps_onto_nested_dataclasses(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('name = "demo"\nfamilies = ["a", "b"]\n[trainer]\nlr = 1\nkind = "grpo"\n'
                    '[curriculum]\nepsilon = 0.1\n')
    config = load_toml(path, Outer)
    assert config == Outer(name="demo", families=["a", "b"], trainer=Inner(lr=1.0, kind="grpo"),
                           curriculum=CurriculumConfig(epsilon=0.1))
    assert from_dict(Outer, to_dict(config)) == config


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "famlies": []}, "unknown key 'famlies' (did you mean 'families'?)"),
    ({"name": "x", "trainer": {"lr": "fast"}}, "config.trainer.lr: expected float"),
    ({"name": "x", "trainer": {"kind": "ppo"}}, "config.trainer.kind: 'ppo' is not one of"),
    ({"name": "x", "curriculum": {"epsilon": 3.0}}, "curriculum.epsilon must be in [0, 1]"),
    ({"families": []}, "missing 1 required keyword-only argument: 'name'"),
    ({"name": "x", "seed": True}, "config.seed"),
])
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data)
    assert message in str(info.value)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "nope.toml", Outer)
    (tmp_path / "bad.toml").write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(tmp_path / "bad.toml", Outer)


def test_describe_lists_every_field_with_its_help():
    text = "\n".join(describe(Outer))
    assert "trainer.lr = 0.0001  # learning rate" in text and "[curriculum]" in text


def test_every_shipped_config_loads_and_names_a_registered_env():
    from pathlib import Path

    import selfgym
    from selfgym.run.loopconfig import RunConfig

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))
    assert {p.stem for p in configs} >= {"demo", "rft", "reflexion", "grpo", "score"}
    ids = {info.id for info in selfgym.list_envs()}
    for path in configs:
        config = load_toml(path, RunConfig)
        assert config.env.id in ids, path
