import pytest

from ehrforge.config import load_config
from ehrforge.errors import ConfigError


def test_defaults_and_overrides():
    cfg = load_config(overrides=["sft.max_steps=7", "task_options.entropy=mean", "data.train_limit=10"])
    assert cfg.sft.max_steps == 7 and cfg.task_options["entropy"] == "mean" and cfg.data.train_limit == 10


def test_task_sft_defaults_sit_beneath_the_file_and_set(tmp_path):
    from ehrforge.core.sft import SFTSettings
    from ehrforge.tasks import task_class

    assert load_config(task="sql").sft.max_seq_len == task_class("sql").sft_defaults["max_seq_len"] != SFTSettings().max_seq_len
    assert load_config(task="classify").sft.lora_r == SFTSettings().lora_r  # a task without its own keeps the core's
    run = tmp_path / "run.yaml"
    run.write_text("task: sql\nsft:\n  lora_r: 4\n")
    cfg = load_config(run, ["sft.max_seq_len=512"])
    assert (cfg.sft.lora_r, cfg.sft.max_seq_len, cfg.sft.lora_alpha) == (4, 512, task_class("sql").sft_defaults["lora_alpha"])


def test_every_problem_listed_at_once():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["task=sqll", "sft.learning_rate=5", "sft.bogus=1", "grpo.beta=-1", "oops"])
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


def test_task_options_are_validated_with_everything_else():
    """The task's own typed options are checked in the same pass: one error lists config and task problems."""
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["sft.max_steps=0", "task_options.threshold=.nan", "task_options.entropy=median",
                               "task_options.bogus=1"])
    text = " ".join(info.value.problems)
    assert len(info.value.problems) == 4
    assert "sft.max_steps" in text and "task_options.threshold" in text and "task_options.bogus: unknown setting" in text


@pytest.mark.parametrize("value", [".nan", ".inf", "-0.5"])
def test_an_abstention_threshold_that_would_switch_abstention_off_or_on_is_refused(value):
    with pytest.raises(ConfigError, match="task_options.threshold"):
        load_config(overrides=[f"task_options.threshold={value}"])


def test_duplicate_keys_and_unreadable_configs_are_one_line(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("sft:\n  max_steps: 2\nsft:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match="'sft' appears twice"):
        load_config(dup)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path)
