from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.evaluate import evaluate
from ehrforge.core.report import metrics_table
from ehrforge.core.types import Answer
from ehrforge.core.contract import Task


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
