"""One precedence for every run (ehrforge.tasks.resolve_task): flag > --set > YAML > a trained folder's manifest >
the task's defaults, checked for the settings that used to disagree: max_new_tokens, threshold, k, db."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ehrforge.config import load_config
from ehrforge.errors import ConfigError
from ehrforge.tasks import resolve_task
from ehrforge.tasks.sql.task import SQLTask


@pytest.fixture
def yaml_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("task: sql\nmax_new_tokens: 100\ntask_options:\n  k: 1\n  db: yaml.sqlite\n")
    return path


def test_max_new_tokens_flag_over_set_over_yaml_over_the_task_default(yaml_config):
    assert resolve_task(load_config(task="sql")).max_new_tokens == SQLTask.default_max_new_tokens
    assert resolve_task(load_config(yaml_config)).max_new_tokens == 100  # YAML's run-level key
    cfg = load_config(yaml_config, ["task_options.max_new_tokens=200"])
    assert resolve_task(cfg).max_new_tokens == 200  # --set of the task option over the YAML
    assert resolve_task(cfg, max_new_tokens=50).max_new_tokens == 50  # the verb's flag over all


def test_k_and_db_flag_over_set_over_yaml(yaml_config):
    task = resolve_task(load_config(yaml_config))
    assert (task.setting("k"), str(task.db)) == (1, "yaml.sqlite")
    task = resolve_task(load_config(yaml_config, ["task_options.k=0", "task_options.db=set.sqlite"]))
    assert (task.setting("k"), str(task.db)) == (0, "set.sqlite")
    assert str(resolve_task(load_config(yaml_config), db="flag.sqlite").db) == "flag.sqlite"


def test_the_manifest_sits_beneath_what_the_user_set_and_above_the_defaults():
    manifest = {"tuned": {"threshold": 0.9, "entropy": "max"}, "prompt_options": {"k": 0, "draft": True}}
    plain = resolve_task(load_config(task="sql"))
    plain.restore(manifest)
    assert (plain.setting("threshold"), plain.setting("k"), plain.setting("draft")) == (0.9, 0, True)
    assert plain.options.k == SQLTask.Options.model_fields["k"].default  # the options are never written
    chosen = resolve_task(load_config(task="sql", task_options={"k": 3}), threshold=0.3)
    chosen.restore(manifest)
    assert (chosen.setting("threshold"), chosen.setting("k"), chosen.setting("draft")) == (0.3, 3, True)


def test_options_are_frozen_and_a_flag_the_task_lacks_is_one_error():
    task = resolve_task(load_config(task="sql"))
    with pytest.raises(ValidationError):
        task.options.threshold = 0.5
    with pytest.raises(ConfigError, match="--entities: the sql task has no 'entities' option"):
        resolve_task(load_config(task="sql"), entities="Disease")
