"""A full, read-only or vanished output folder: one line, exit 1, nothing half-written, an exact resume."""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import tempfile

import pandas as pd
import pytest

from evoboard.errors import WriteFailed
from evoboard.suite import cli
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec
from tests.conftest import history, rows

SPEC = RunSpec("CartPole-v1", population=8, generations=3, seed=1, settings={"max_steps": 100})
ARGS = ["--task", "CartPole-v1", "--population", "8", "--generations", "3", "--seed", "1", "--set", "max_steps=100"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    row = run_spec(SPEC, out)
    return rows(out), history(out, row["run_id"])


def fail_on(monkeypatch, name: str, nth: int, code: int = errno.ENOSPC, at: str = "replace") -> None:
    """Raise OSError(code) at the ``nth`` write of files called ``name`` (at their rename or temp file)."""
    calls = {"n": 0}

    def faulty(real, target):
        def call(*args, **kwargs):
            path = str(args[1] if at == "replace" else kwargs["prefix"])
            if os.path.basename(path).strip(".") == name or path.startswith(f".{name}."):
                calls["n"] += 1
                if calls["n"] == nth:
                    raise OSError(code, os.strerror(code), target)
            return real(*args, **kwargs)

        return call

    if at == "append":  # history.jsonl is appended to, not replaced
        real_open = pathlib.Path.open

        def opened(path, mode="r", *args, **kwargs):
            if path.name == name and mode == "ab":
                calls["n"] += 1
                if calls["n"] == nth:
                    raise OSError(code, os.strerror(code), str(path))
            return real_open(path, mode, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "open", opened)
    elif at == "replace":
        monkeypatch.setattr(os, "replace", faulty(os.replace, name))
    else:
        monkeypatch.setattr(tempfile, "mkstemp", faulty(tempfile.mkstemp, name))


@pytest.mark.parametrize(
    "name, nth, intact, at",
    [
        ("history.csv", 2, "generation 0 is the last complete one", "replace"),
        ("history.jsonl", 1, "generation 0 is the last complete one", "append"),  # row 0 joins it at generation 1
        ("history.jsonl", 3, "generation 2 is the last complete one", "append"),  # the last row, at the end
        ("checkpoint.json", 3, "generation 1 is the last complete one", "replace"),
        ("leaderboard.csv", 1, "generation 2 is the last complete one", "replace"),
        ("elite.safetensors", 1, "generation 2 is the last complete one", "replace"),
        ("checkpoint.json", 4, "generation 2 is the last complete one", "replace"),  # the "finished" one
    ],
)
def test_a_full_disk_is_one_line_and_the_run_resumes_exactly(
    reference, tmp_path, monkeypatch, capsys, name, nth, intact, at
):
    fail_on(monkeypatch, name, nth, at=at)
    assert cli.main(["run", *ARGS, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("evoboard: write failed: cannot write ") and name in err
    assert "No space left on device" in err and intact in err
    [folder] = (tmp_path / "runs").iterdir()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") and "elite" not in p.name]
    assert not (tmp_path / "leaderboard.csv").exists() or name != "leaderboard.csv"

    monkeypatch.undo()  # space is back
    assert cli.main(["resume", str(folder)]) == 0, capsys.readouterr().err
    expected_rows, expected_history = reference
    pd.testing.assert_frame_equal(rows(tmp_path), expected_rows)
    pd.testing.assert_frame_equal(history(tmp_path, folder.name), expected_history)
    assert (folder / "elite.safetensors").exists()


def test_a_read_only_folder_at_the_spec_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    fail_on(monkeypatch, "spec.json", 1, errno.EROFS, at="mkstemp")
    assert cli.main(["run", *ARGS, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err and "no run folder is left" in err
    assert not list((tmp_path / "runs").iterdir())


def test_a_resume_whose_checkpoint_write_fails_is_one_line_too(tmp_path, monkeypatch, capsys):
    fail_on(monkeypatch, "checkpoint.json", 2)
    assert cli.main(["run", *ARGS, "--out", str(tmp_path)]) == 1
    [folder] = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    monkeypatch.undo()
    fail_on(monkeypatch, "history.csv", 1, errno.EROFS, at="mkstemp")
    assert cli.main(["resume", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err and "generation 0 is the last complete" in err


def test_a_vanished_run_folder_says_so(tmp_path):
    def remove_folder(row, total):
        shutil.rmtree(next((tmp_path / "runs").iterdir()))

    with pytest.raises(WriteFailed, match="No such file or directory; no run folder is left"):
        run_spec(SPEC, tmp_path, remove_folder)


def test_atomic_writes_get_the_permissions_of_an_ordinary_file(tmp_path):
    """mkstemp creates 0600; a leaderboard or history shared with colleagues must follow the umask instead."""
    import os

    from evoboard.suite.atomic import write_atomic

    before = os.umask(0o022)
    try:
        target = tmp_path / "table.csv"
        write_atomic(target, lambda f: f.write("a,b\n"))
        assert target.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(before)
