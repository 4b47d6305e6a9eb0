"""`evoboard report` writes real PNG plots and a Markdown report that embeds them."""

from __future__ import annotations

import pytest

from evoboard.errors import UsageError
from evoboard.suite.board.report import collect, variants, write_report
from evoboard.suite.cli import main
from evoboard.suite.runner import run_spec
from evoboard.suite.spec import RunSpec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Two seeds of each of two variants (the below-elite rule on and off) on Pendulum."""
    out = tmp_path_factory.mktemp("report") / "results"
    for seed in (0, 1):
        for margin in (None, 50.0):
            settings = {"max_steps": 60, **({"elite_margin": margin} if margin else {})}
            run_spec(RunSpec("Pendulum-v1", population=4, generations=3, seed=seed, settings=settings), out)
    return out


def test_report_of_an_output_folder(out, capsys):
    assert main(["report", str(out)]) == 0
    report = out / "report" / "report.md"
    assert capsys.readouterr().out.strip() == str(report)
    pngs = sorted((out / "report").glob("*.png"))
    assert [p.name for p in pngs] == ["Pendulum-v1_fitness.png", "Pendulum-v1_frames.png", "Pendulum-v1_mutations.png"]
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 10_000
    text = report.read_text()
    assert "![Pendulum-v1_fitness](Pendulum-v1_fitness.png)" in text
    assert "| 1 | Pendulum-v1 | dense/ga elite_margin=" in text  # aggregated per variant: 2 seeds a row


def test_variants_separate_settings_that_differ_and_pool_seeds(out):
    records, _ = collect(out)
    groups = variants(records)
    assert sorted(groups) == ["dense/ga elite_margin=50.0", "dense/ga elite_margin=None"]
    assert all(len(runs) == 2 for runs in groups.values())


def test_report_of_one_run_folder(out):
    run = next((out / "runs").iterdir())
    report = write_report(run)
    assert report == run / "report" / "report.md" and (run / "report" / "Pendulum-v1_fitness.png").exists()


def test_report_of_something_else_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="neither a run folder"):
        write_report(tmp_path)
