"""GRPO on a real (tiny, random) transformer: rewards see the dataset columns, the policy moves, the reward curve
is written, an interrupted run resumes from its checkpoint, and bad settings are reported all at once."""

from __future__ import annotations

import csv
import json

import pytest

from ehrforge.core.backends import load_backend
from ehrforge.core.grpo import GRPOSettings, last_checkpoint, train_grpo
from ehrforge.core.types import Answer
from ehrforge.errors import ConfigError, DataError
from ehrforge.core.contract import Task

SEEN: list[dict] = []


def length_reward(completions, target_len, **_):
    """Varies within every group (sampled lengths differ), so advantages are non-zero and the policy must move."""
    SEEN.append({"n": len(completions), "target_len": list(target_len)})
    return [
        -abs(len(c[0]["content"] if isinstance(c, list) else c) - int(t)) / 10 for c, t in zip(completions, target_len)
    ]


class CountTask(Task):
    name = "count"
    metric = "accuracy"

    def load(self, split, **_):
        return [{"id": str(i), "q": f"count to {i}", "target_len": 5 + i} for i in range(6)]

    def prompt(self, r):
        return [{"role": "user", "content": r["q"]}]

    def target(self, r):
        return "x" * r["target_len"]

    def parse(self, g, r):
        return Answer(g.text)

    def score(self, records, preds):
        return {"accuracy": 0.0}

    def rewards(self):
        return [length_reward]

    def grpo_example(self, r):
        return {"prompt": self.prompt(r), "target_len": r["target_len"]}


FAST = dict(
    num_generations=2, prompts_per_step=2, max_completion_length=8, learning_rate=5e-3, save_steps=1, logging_steps=1
)


def test_grpo_trains_adapter_and_writes_reward_curve(tiny_model_dir, tmp_path):
    SEEN.clear()
    task = CountTask()
    out = train_grpo(
        task, task.load("train"), str(tiny_model_dir), tmp_path / "grpo", GRPOSettings(max_steps=2, **FAST)
    )
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert meta["steps"] == 2 and meta["rewards"] == ["length_reward"] and meta["stage"] == "grpo"
    # the reward saw groups of 2 prompts × 2 generations with the task's own column
    assert SEEN and all(s["n"] == 4 and len(s["target_len"]) == 4 for s in SEEN)
    rows = list(csv.DictReader((out / "reward_curve.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert "rewards/length_reward/mean" in rows[0] and float(rows[0]["reward"]) <= 0
    assert (out / "reward_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the LoRA update is not a no-op: B matrices start at zero and must have moved
    from safetensors.torch import load_file

    weights = load_file(str(out / "adapter_model.safetensors"))
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in weights.items())
    backend = load_backend(f"transformers:{out}")
    assert backend.generate([task.prompt(task.load("x")[0])], max_new_tokens=3)[0].token_logprobs is not None


class Interrupt(Exception):
    pass


def _stop_after_first_save():
    from transformers import TrainerCallback

    class Stop(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 1:
                raise Interrupt

    return Stop()


def test_grpo_resumes_from_checkpoint(tiny_model_dir, tmp_path):
    task = CountTask()
    out = tmp_path / "grpo"
    settings = GRPOSettings(max_steps=2, **FAST)
    with pytest.raises(Interrupt):
        train_grpo(task, task.load("train"), str(tiny_model_dir), out, settings, callbacks=[_stop_after_first_save()])
    assert not (out / "adapter_config.json").exists()  # nothing that looks like a finished adapter
    assert last_checkpoint(out / "checkpoints").name == "checkpoint-1"
    assert [r["step"] for r in csv.DictReader((out / "reward_curve.csv").open())] == ["1"]  # curve kept up to date
    train_grpo(task, task.load("train"), str(tiny_model_dir), out, settings)
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert meta["resumed_from"] == "checkpoint-1" and meta["steps"] == 2
    assert [int(r["step"]) for r in csv.DictReader((out / "reward_curve.csv").open())] == [1, 2]


def test_settings_list_every_problem():
    with pytest.raises(ConfigError) as err:
        GRPOSettings.from_mapping({"num_generations": 1, "beta": -1, "learning_rate": 0, "max_steps": 0})
    text = str(err.value)
    for field in ("num_generations", "beta", "learning_rate", "max_steps"):
        assert field in text
    assert GRPOSettings.from_mapping(
        {"num_generations": "8", "beta": "0.0", "reward_weights": "1,0.5"}
    ).reward_weights == [1.0, 0.5]
    with pytest.raises(ConfigError, match="grpo.groups: unknown setting"):
        GRPOSettings.from_mapping({"groups": "4"})


def test_no_records_or_rewards_is_a_clear_error(tiny_model_dir, tmp_path):
    with pytest.raises(DataError, match="no training records"):
        train_grpo(CountTask(), [], str(tiny_model_dir), tmp_path / "x")
    with pytest.raises(DataError, match="reward_weights has 2 values for 1"):
        train_grpo(
            CountTask(),
            CountTask().load("t"),
            str(tiny_model_dir),
            tmp_path / "x",
            GRPOSettings(reward_weights=[1.0, 1.0]),
        )
