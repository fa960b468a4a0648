import json

import pytest

from ehrforge.core.io import JsonlCheckpoint, atomic_open, atomic_write_json, read_jsonl
from ehrforge.errors import DataError


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_read_jsonl_reports_and_keeps_bad_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1}\nnot json\n[1, 2]\n\n{"id": 2}\n')
    rejects = tmp_path / "rejects.jsonl"
    result = read_jsonl(src, rejects=rejects)
    assert [r["id"] for r in result.records] == [1, 2]
    assert result.rejected_lines == [2, 3]
    assert rejects.read_text() == "not json\n[1, 2]\n"


def test_read_jsonl_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_checkpoint_resumes_and_drops_torn_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    with JsonlCheckpoint(path) as ck:
        ck.add({"id": "a", "label": 1})
        ck.add({"id": "b", "label": 0})
    with path.open("a") as fh:
        fh.write('{"id": "c", "lab')  # killed mid-write
    ck = JsonlCheckpoint(path)
    assert "a" in ck and "b" in ck and "c" not in ck
    ck.add({"id": "c", "label": 1})
    ck.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]


def test_read_jsonl_rejects_lines_that_are_not_utf8_byte_for_byte(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": 1}\n{"id": 2, "text": "caf\xe9"}\n')
    rejects = tmp_path / "rejects.jsonl"
    result = read_jsonl(src, rejects=rejects)
    assert [r["id"] for r in result.records] == [1] and result.rejected_lines == [2]
    assert rejects.read_bytes() == b'{"id": 2, "text": "caf\xe9"}\n'


def test_folders_are_data_errors_for_reading_and_writing(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_jsonl(tmp_path)
    with pytest.raises(DataError, match="is a folder"):
        atomic_write_json(tmp_path, {"a": 1})
    with pytest.raises(DataError, match="is a folder"):
        JsonlCheckpoint(tmp_path)
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_output_in_an_uncreatable_folder_is_a_data_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError, match="is a file, not a folder"):
        atomic_write_json(blocker / "sub" / "out.json", {"a": 1})
    with pytest.raises(DataError, match="under /proc"):
        atomic_write_json("/proc/ehrforge-nope/out.json", {"a": 1})
    atomic_write_json(tmp_path / "new" / "deeper" / "out.json", {"a": 1})  # missing folders are still created
    assert json.loads((tmp_path / "new" / "deeper" / "out.json").read_text()) == {"a": 1}


def test_a_second_process_on_the_same_output_is_refused(tmp_path):
    """Issue 33 item 4: two commands writing one output at once; the second refuses with one line."""
    import subprocess
    import sys
    import time

    import pytest

    from ehrforge.core.io import exclusive_output
    from ehrforge.errors import DataError

    out = tmp_path / "labelled.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from ehrforge.core.io import exclusive_output\n"
        f"with exclusive_output({str(out)!r}):\n    print('held', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataError, match="being written by another running command"):
            with exclusive_output(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with exclusive_output(out):  # the lock died with its process
        pass


def test_synth_refuses_a_file_it_did_not_write(tmp_path):
    from ehrforge.core.io import check_own_output
    from ehrforge.errors import DataError
    import pytest

    out = tmp_path / "mydata.jsonl"
    out.write_text('{"id": "mine"}\n')
    with pytest.raises(DataError, match="not written by this command"):
        check_own_output(out, {"task": "extract", "seed": 0}, overwrite=False)
    assert out.read_text() == '{"id": "mine"}\n'
    check_own_output(out, {"task": "extract", "seed": 0}, overwrite=True)  # explicit: starts afresh
    assert not out.exists()
    out.write_text('{"id": "ours"}\n')
    check_own_output(out, {"task": "extract", "seed": 0}, overwrite=False)  # its own output: resumes
    with pytest.raises(DataError):
        check_own_output(out, {"task": "calc", "seed": 0}, overwrite=False)  # another task's file
