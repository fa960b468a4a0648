import pytest

from ehrforge.config import load_config
from ehrforge.errors import ConfigError


def test_defaults_and_overrides():
    cfg = load_config(overrides=["sft.max_steps=7", "abstention.entropy=mean", "data.train_limit=10"])
    assert cfg.sft.max_steps == 7 and cfg.abstention.entropy == "mean" and cfg.data.train_limit == 10


def test_every_problem_listed_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["task=sqll", "sft.learning_rate=5", "sft.bogus=1", "abstention.entropy=median", "oops"])
    problems = info.value.problems
    assert len(problems) == 5
    text = " ".join(problems)
    assert "did you mean 'sql'" in text and "sft.bogus: unknown setting" in text and "is not key=value" in text


def test_yaml_file_and_syntax_error(tmp_path):
    good = tmp_path / "run.yaml"
    good.write_text("task: sql\nsft:\n  max_steps: 3\n")
    assert load_config(good).sft.max_steps == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: sql\nsft:\n  max_steps: [3\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
