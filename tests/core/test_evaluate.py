import subprocess
import sys
from pathlib import Path

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.evaluate import evaluate, peak_rss_mb
from ehrforge.core.report import metrics_table
from ehrforge.core.types import Answer
from ehrforge.tasks.base import Task


class Upper(Task):
    name, metric = "upper", "accuracy"

    def load(self, split, **_):
        return [{"id": str(i), "w": w} for i, w in enumerate(["a", "b", "c", "d"])]

    def prompt(self, r):
        return [{"role": "user", "content": r["w"]}]

    def target(self, r):
        return r["w"].upper()

    def parse(self, g, r):
        return Answer(g.text)

    def score(self, records, preds):
        return {"accuracy": sum(p.value == self.target(r) for r, p in zip(records, preds)) / len(records)}


def test_models_side_by_side():
    task = Upper()
    records = task.load("valid")
    good = FakeBackend(respond=lambda m: m[-1]["content"].upper())
    half = FakeBackend(["A", "x", "C", "y"])
    results = evaluate(task, {"good": good, "half": half}, records, batch_size=3)
    assert results["good"]["accuracy"] == 1.0 and results["half"]["accuracy"] == 0.5
    assert results["good"]["examples_per_s"] > 0
    table = metrics_table(results, keys=["accuracy"])
    assert [c.header for c in table.columns] == ["model", "accuracy"] and table.row_count == 2


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_of_a_child_process_is_its_own_not_its_parents():
    # Linux carries ru_maxrss across execve: a benchmark arm run as a child of a parent that once held 400 MB more
    # would report the parent's peak. The child here holds almost nothing.
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page so it is resident
    parent = peak_rss_mb()
    out = subprocess.run([sys.executable, "-c", "from ehrforge.core.evaluate import peak_rss_mb; print(peak_rss_mb())"],
                         capture_output=True, text=True, check=True)
    del ballast
    assert float(out.stdout) < parent - 200
