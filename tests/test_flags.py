"""Run flags declared once: the CLI's flags, a run file's keys and evoboard.run's keywords all come from the fields."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from evoboard.errors import UsageError
from evoboard.suite import api
from evoboard.suite.cli import build_parser, main
from evoboard.suite.config import RUN_ONLY, SPEC_TYPES, RunFiles
from evoboard.suite.flags import add_flags, flag, flag_fields, flag_types
from evoboard.suite.spec import RunSpec


def run_parser() -> argparse.ArgumentParser:
    return next(a for a in build_parser()._actions if a.dest == "command").choices["run"]


def test_every_spec_field_is_a_flag_a_run_file_key_and_a_keyword():
    spec_fields = [f.name for f in dataclasses.fields(RunSpec) if f.name != "settings"]
    cli = [a.dest for a in run_parser()._actions if a.dest not in ("help", "sets")]
    assert list(SPEC_TYPES) == spec_fields and RUN_ONLY == ("out", "log")  # --config names no file inside a file
    assert set(cli) == set(spec_fields) | {"config", "out", "log"} == set(api.FLAGS)
    assert cli == list(api.FLAGS)  # one order: the declaration's, each "before" flag ahead of the one it names
    assert cli.index("config") == 0 and cli.index("out") == cli.index("device") - 1
    assert SPEC_TYPES["population"] is int and SPEC_TYPES["policy"] is str  # str | None: a flag left out is None
    assert RunFiles.out == "results"


def test_a_new_field_is_a_new_flag_with_its_help_and_type():
    @dataclasses.dataclass
    class Extra:
        budget: int = flag(7, help="frames per member (default: {default})", before="seed")
        tag: str | None = flag(None, help="a label", in_file=False)

    parser = argparse.ArgumentParser(prog="x")
    add_flags(parser, RunSpec, Extra)
    help_text = " ".join(parser.format_help().split())
    assert "--budget BUDGET frames per member (default: 7)" in help_text
    assert [f.name for f in flag_fields(RunSpec, Extra)].index("budget") == 6  # ahead of seed
    assert flag_types(Extra) == {"budget": int}
    assert parser.parse_args(["--budget", "3"]).budget == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--budget", "x"])  # argparse's own error for a bad int


def test_bad_flag_values_are_one_line(capsys):
    assert main(["run", "--task", "CartPole-v1", "--population", "x"]) == 2
    assert "argument --population: invalid int value: 'x'" in capsys.readouterr().err
    with pytest.raises(UsageError, match="invalid choice: 'gpu'"):
        api.run("CartPole-v1", device="gpu")
