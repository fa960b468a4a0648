"""The protocol-table generator: renderings, structure of SoE vs look-alikes, the simulated teacher's noise."""

from __future__ import annotations

import re

import pytest

from ehrforge.core.io import read_jsonl
from ehrforge.core.label import label_records
from ehrforge.tasks.classify.simulated_teacher import SimulatedTeacher
from ehrforge.tasks.classify.tables import Table, generate_tables, render
from ehrforge.tasks.classify.task import ClassifyTask


def test_renderings_of_one_table():
    t = Table(["Procedure", "V1", "V2"], [["ECG", "X", ""], ["Vital signs", "X", "X"]], "Schedule of Events", ["a note"])
    html = render(t, "html")
    assert html.startswith("<table><caption>Schedule of Events</caption>") and html.count("<tr>") == 3
    md = render(t, "markdown").splitlines()
    assert md[2] == "| Procedure | V1 | V2 |" and md[3] == "|---|---|---|" and md[5] == "| Vital signs | X | X |"
    text = render(t, "text").splitlines()
    assert text[0] == "Schedule of Events" and text[2].split() == ["ECG", "X"]
    with pytest.raises(ValueError):
        render(t, "pdf")


def test_html_escapes_cell_text():
    t = Table(["Parameter", "Limit"], [["ANC", "<1.5 & >0.5"]])
    assert "&lt;1.5 &amp; &gt;0.5" in render(t, "html")


def test_soe_tables_have_visit_grids_with_marks_and_look_alikes_mostly_do_not():
    recs = generate_tables(400, seed=11)
    marks = re.compile(r"(^|[|\s>])(X|x|✓|•)[ab]?(?=[|\s<]|$)", re.M)
    soe = [r for r in recs if r["kind"] == "soe"]
    easy_neg = [r for r in recs if r["kind"] in ("lab_ranges", "demographics", "adverse_events", "inclusion")]
    assert all(marks.search(r["text"]) for r in soe)
    assert not any(marks.search(r["text"]) for r in easy_neg)
    # the hard look-alike has X marks too: that is what makes it hard
    assert any(marks.search(r["text"]) for r in recs if r["kind"] == "dosing_calendar")
    hard = [r["difficulty"] for r in recs if r["kind"] == "dosing_calendar"]
    easy = [r["difficulty"] for r in easy_neg]
    assert min(hard) > max(easy)


def test_positive_rate_is_controllable():
    assert all(r["gold"] == "other" for r in generate_tables(50, seed=1, positive_rate=0.0))
    assert all(r["gold"] == "soe" for r in generate_tables(50, seed=1, positive_rate=1.0))
    with pytest.raises(ValueError):
        generate_tables(5, positive_rate=1.5)


@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_simulated_teacher_noise_rate_and_calibration(noise, tmp_path):
    task = ClassifyTask(n_train=600)
    recs = task.load("train")
    out = tmp_path / "l.jsonl"
    label_records(task, SimulatedTeacher(recs, noise_rate=noise, seed=2, task=task), recs, out, progress=False)
    got = read_jsonl(out).records
    wrong = [r["label"] != r["gold"] for r in got]
    assert sum(wrong) / len(got) == pytest.approx(noise, abs=0.05)
    # errors concentrate on low confidence: the wrong labels' mean confidence is lower than the right ones'
    conf_wrong = [r["confidence"] for r, w in zip(got, wrong) if w]
    conf_right = [r["confidence"] for r, w in zip(got, wrong) if not w]
    assert sum(conf_wrong) / len(conf_wrong) < sum(conf_right) / len(conf_right) - 0.05


def test_simulated_teacher_is_reproducible_and_garbage_is_not_a_label():
    task = ClassifyTask(n_train=50)
    recs = task.load("train")
    prompts = [task.prompt(r) for r in recs]
    a = SimulatedTeacher(recs, seed=4, task=task).generate(prompts)
    b = SimulatedTeacher(recs, seed=4, task=task).generate(prompts)
    assert [g.text for g in a] == [g.text for g in b]
    garbage = SimulatedTeacher(recs, seed=4, garbage_rate=1.0, task=task).generate(prompts[:3])
    assert all(task.parse(g, r).__class__.__name__ == "Abstain" for g, r in zip(garbage, recs))


def test_simulated_teacher_for_a_synthesized_file(tmp_path):
    from ehrforge.tasks.classify.simulated_teacher import simulated_teacher_for

    task = ClassifyTask(n_train=5, n_valid=5, n_test=5)
    task.synthesize(tmp_path / "tables.jsonl", n=10, seed=9)
    teacher = simulated_teacher_for(task, [str(tmp_path / "tables.jsonl")], noise_rate=0.0)
    recs = task.load("all", source=str(tmp_path / "tables.jsonl"))
    gens = teacher.generate([task.prompt(r) for r in recs])
    assert [task.parse(g, r).value for g, r in zip(gens, recs)] == [r["gold"] for r in recs]  # no noise: gold
    (tmp_path / "nogold.jsonl").write_text('{"id": "x", "text": "| a |"}\n')
    from ehrforge.errors import DataError

    with pytest.raises(DataError, match="needs gold labels"):
        simulated_teacher_for(task, [str(tmp_path / "nogold.jsonl")])
