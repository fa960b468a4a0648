"""LoRA SFT on a real (tiny, random) transformer: adapter written, loadable, stackable, resumable."""

import json

import pytest

from ehrforge.core.backends import load_backend
from ehrforge.core.sft import SFTSettings, train_sft
from ehrforge.core.types import Answer
from ehrforge.core.contract import Task


class EchoTask(Task):
    name = "echo"
    metric = "accuracy"

    def load(self, split, **_):
        return [{"id": str(i), "q": f"say {w}", "a": w} for i, w in enumerate(["yes", "no"] * 4)]

    def prompt(self, r):
        return [{"role": "user", "content": r["q"]}]

    def target(self, r):
        return r["a"]

    def parse(self, g, r):
        return Answer(g.text)

    def score(self, records, preds):
        return {"accuracy": sum(p.value == r["a"] for r, p in zip(records, preds)) / len(records)}


def test_sft_writes_loadable_adapter_and_learns(tiny_model_dir, tmp_path):
    task = EchoTask()
    out = train_sft(task, task.load("train"), str(tiny_model_dir), tmp_path / "adapter",
                    SFTSettings(max_steps=25, learning_rate=1e-2, batch_size=8, save_steps=100))
    meta = json.loads((out / "ehrforge_model.json").read_text())
    assert (out / "adapter_config.json").exists() and meta["task"] == "echo" and meta["steps"] == 25
    assert not (out / "checkpoints").exists()
    backend = load_backend(f"transformers:{out}")
    gen = backend.generate([task.prompt(task.load("x")[0])], max_new_tokens=3)[0]
    assert gen.token_logprobs is not None
    # Training moved the model: its loss on the training targets went down.
    assert meta["train_loss"] < 6.05  # ln(vocab≈420) ≈ 6.04 is the loss of the untrained uniform model


def test_stage_two_trains_on_top_of_an_adapter(tiny_model_dir, tmp_path):
    task = EchoTask()
    first = train_sft(task, task.load("train"), str(tiny_model_dir), tmp_path / "s1", SFTSettings(max_steps=1))
    second = train_sft(task, task.load("train"), str(first), tmp_path / "s2", SFTSettings(max_steps=1))
    assert json.loads((second / "ehrforge_model.json").read_text())["base_model"] == str(first.resolve())
    assert load_backend(f"transformers:{second}").generate([[{"role": "user", "content": "hi"}]], max_new_tokens=2)


def test_sft_resumes_from_checkpoint(tiny_model_dir, tmp_path):
    task = EchoTask()
    out = tmp_path / "adapter"
    # First run: stop after the checkpoint at step 2 by asking for 2 steps but keeping checkpoints.
    cfg = SFTSettings(max_steps=2, save_steps=2, batch_size=2)
    _interrupted_run(task, tiny_model_dir, out, cfg)
    assert (out / "checkpoints" / "checkpoint-2").exists()
    resumed = train_sft(task, task.load("train"), str(tiny_model_dir), out, SFTSettings(max_steps=4, save_steps=2, batch_size=2))
    meta = json.loads((resumed / "ehrforge_model.json").read_text())
    assert meta["steps"] == 4 and meta["resumed_from_step"] == 2


def test_no_records_is_a_data_error(tiny_model_dir, tmp_path):
    from ehrforge.errors import DataError

    with pytest.raises(DataError):
        train_sft(EchoTask(), [], str(tiny_model_dir), tmp_path / "x")


def _interrupted_run(task, tiny_model_dir, out, cfg):
    """Train ``cfg`` but keep its checkpoints, as a run stopped after its last save would."""
    from ehrforge.core import sft as sft_module

    real = sft_module.remove_own_checkpoints
    sft_module.remove_own_checkpoints = lambda ckpt_dir: None
    try:
        train_sft(task, task.load("train"), str(tiny_model_dir), out, cfg)
    finally:
        sft_module.remove_own_checkpoints = real


def test_resume_with_other_settings_or_data_is_refused(tiny_model_dir, tmp_path):
    from ehrforge.errors import DataError

    task = EchoTask()
    out = tmp_path / "adapter"
    _interrupted_run(task, tiny_model_dir, out, SFTSettings(max_steps=2, save_steps=2, batch_size=2))
    with pytest.raises(DataError, match=r"sft.learning_rate: 0.0002 -> 0.001"):
        train_sft(task, task.load("train"), str(tiny_model_dir), out, SFTSettings(max_steps=4, save_steps=2, batch_size=2, learning_rate=1e-3))
    with pytest.raises(DataError, match="training data differs"):
        train_sft(task, task.load("train")[:-1], str(tiny_model_dir), out, SFTSettings(max_steps=4, save_steps=2, batch_size=2))
    assert (out / "checkpoints" / "checkpoint-2").exists()  # a refusal leaves the checkpoint as it was


def test_a_pickled_object_in_a_checkpoint_is_never_run(tiny_model_dir, tmp_path):
    """A checkpoint can come from someone else (a commit, a shared folder): loading it must not unpickle code."""
    import pickle

    import torch

    task = EchoTask()
    out = tmp_path / "adapter"
    _interrupted_run(task, tiny_model_dir, out, SFTSettings(max_steps=2, save_steps=2, batch_size=2))
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("ran",))

    state = out / "checkpoints" / "checkpoint-2" / "training_state.pt"
    torch.save({"optimizer": Payload()}, state, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    from ehrforge.errors import DataError

    with pytest.raises(DataError, match="not a plain training state"):
        train_sft(task, task.load("train"), str(tiny_model_dir), out, SFTSettings(max_steps=4, save_steps=2, batch_size=2))
    assert not marker.exists()


def test_snapshots_are_loadable_folders_at_the_examples_seen(tiny_model_dir, tmp_path):
    task = EchoTask()
    out = tmp_path / "adapter"
    records = task.load("train")
    train_sft(task, records, str(tiny_model_dir), out, SFTSettings(epochs=1, batch_size=2, snapshot_examples=[2, 4]))
    seen = sorted(int(p.name.removeprefix("seen-")) for p in (out / "snapshots").iterdir())
    assert seen == [2, 4]
    manifest = json.loads((out / "snapshots" / "seen-4" / "ehrforge_model.json").read_text())
    assert manifest["examples_seen"] == 4 and manifest["steps"] == 2 and manifest["task"] == task.name


def test_only_our_checkpoints_are_deleted(tiny_model_dir, tmp_path):
    task = EchoTask()
    out = tmp_path / "proj"
    theirs = out / "checkpoints" / "notes-from-another-tool.txt"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("keep me")
    train_sft(task, task.load("train"), str(tiny_model_dir), out, SFTSettings(max_steps=2, save_steps=1, batch_size=2))
    assert theirs.read_text() == "keep me"
    assert not list((out / "checkpoints").glob("checkpoint-*"))


def test_a_compacted_checkpoint_resumes(tiny_model_dir, tmp_path):
    """The committed form of a checkpoint (optimiser moments in bf16) still resumes the run."""
    from ehrforge.core.sft import compact_checkpoint

    task = EchoTask()
    out = tmp_path / "adapter"
    _interrupted_run(task, tiny_model_dir, out, SFTSettings(max_steps=2, save_steps=2, batch_size=2))
    before = (out / "checkpoints" / "checkpoint-2" / "training_state.pt").stat().st_size
    assert compact_checkpoint(out / "checkpoints" / "checkpoint-2") < before
    resumed = train_sft(task, task.load("train"), str(tiny_model_dir), out, SFTSettings(max_steps=4, save_steps=2, batch_size=2))
    assert json.loads((resumed / "ehrforge_model.json").read_text())["resumed_from_step"] == 2
