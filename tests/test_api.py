"""The Python API: the documented example runs, bad input fails as the CLI's does, ``import evoboard`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import evoboard
from evoboard.errors import EvoboardError, UsageError
from evoboard.suite.board.leaderboard import COLUMNS
from evoboard.suite.cli import main
from tests.conftest import REPO
from tests.test_cli import RUN_CASES

PAGES = [REPO / "README.md", REPO / "docs" / "python-api.md"]


def python_example(page: Path) -> str | None:
    """The first fenced ```python block after the first heading that names Python; None if the page has none."""
    text = page.read_text()
    heading = re.search(r"^#+ [^\n]*\bPython\b[^\n]*$", text, flags=re.MULTILINE)
    if heading is None:
        return None
    block = re.search(r"^```python\n(.*?)^```", text[heading.end() :], flags=re.MULTILINE | re.DOTALL)
    return block.group(1) if block else None


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_the_documented_example_runs(page, tmp_path):
    code = python_example(page)
    if code is None:
        assert page.name == "README.md", f"{page} has no ```python block under a heading naming Python"
        pytest.skip("README has no Python example yet")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "results" / "leaderboard.csv")
    assert list(table.columns) == COLUMNS and len(table) >= 1
    assert set(table["task"]) == {"CartPole-v1"}


def test_run_returns_the_row_the_leaderboard_holds_and_the_history(out_dir):
    result = evoboard.run(task="CartPole-v1", population=4, generations=2, seed=1, out=out_dir, max_steps=20)
    table = evoboard.leaderboard(out=out_dir)
    assert list(table.columns) == COLUMNS and len(table) == 1
    assert table.loc[0, "run_id"] == result["run_id"] == result.row["run_id"]
    assert result.history["generation"].tolist() == [0, 1]
    assert result.folder == out_dir / "runs" / result["run_id"] and (result.folder / "spec.json").is_file()
    assert '"max_steps": 20' in result["config"]  # a keyword setting reached the task
    assert len(evoboard.leaderboard(out=out_dir, task="Pong-v5")) == 0
    assert evoboard.leaderboard(out=out_dir, aggregate=True).loc[0, "n"] == 1


def as_keywords(argv: list[str]) -> dict[str, str] | None:
    """CLI flags as ``evoboard.run`` keywords (``--set k=v`` -> ``k="v"``); None where Python has no spelling."""
    keywords = {}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        if flag == "--set":
            key, sep, setting = value.partition("=")
            if not sep or not key:
                return None  # a malformed --set pair cannot be written as a keyword
            keywords[key] = setting
        else:
            keywords[flag.removeprefix("--")] = value
    return keywords


@pytest.mark.parametrize("case", RUN_CASES, ids=list(RUN_CASES))
def test_bad_input_raises_the_clis_one_line(case, out_dir, capsys):
    """Every bad-run case of the CLI's table: the same one line (the CLI prints it after ``evoboard: error:``)."""
    argv, _ = RUN_CASES[case]
    keywords = as_keywords(argv)
    if keywords is None:
        pytest.skip("no keyword spelling")
    base = {"task": "CartPole-v1", "population": 4, "generations": 1, "max_steps": "20", "out": str(out_dir)}
    cli_argv = ["run", "--out", str(out_dir), "--task", "CartPole-v1", "--population", "4", "--generations", "1",
                "--set", "max_steps=20", *argv]  # fmt: skip
    assert main(cli_argv) == 2
    cli_line = capsys.readouterr().err.strip().removeprefix("evoboard: error: ")
    with pytest.raises(UsageError) as raised:
        evoboard.run(**{**base, **keywords})
    assert str(raised.value) == cli_line
    assert not out_dir.exists()  # nothing written


def test_every_error_derives_from_one_base():
    from evoboard import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, BaseException)]
    assert len(classes) >= 8 and all(issubclass(c, EvoboardError) for c in classes)
    assert UsageError.exit_code == 2 and errors.RunFailed.exit_code == 1 and errors.WriteFailed.label == "write failed"


def test_import_evoboard_loads_no_torch():
    code = (
        "import sys, evoboard; assert 'torch' not in sys.modules and 'evoboard.suite' not in sys.modules; evoboard.run"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="no attribute 'runn'"):
        evoboard.runn  # noqa: B018
