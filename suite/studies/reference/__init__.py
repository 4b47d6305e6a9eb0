"""The reference studies: each finding of the papers evoboard is built on, tested at a 2-core budget (#16).

A study is a list of runs (a suite file beside this module, baselines included) or a procedure, plus
the claims it tests (``evoboard.suite.studies.claims``). ``evoboard bench <study> --out DIR --seeds 5`` runs it
into ``DIR/<study>/`` (leaderboard, runs with their history, ``report/`` with plots) and writes
``claims.md``, ``claims.csv`` and ``profile.png`` there; ``evoboard bench reference`` runs all of them
and writes the claims table of every study into ``DIR/claims.md``; ``python -m evoboard.suite.studies.reference DIR``
writes that file from studies run one by one (``--rederive NOTE``: after testing every claim again on the rows
already there). How a claim is decided: ``evoboard.suite.board.decide`` and docs/claims.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from evoboard.suite.studies.claims import Claim
from evoboard.suite.studies.claims_report import RULE, claims_markdown, write_claims

FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Study:
    """A named study: how to run it, what it claims, and what it needs that may not be registered yet."""

    name: str
    description: str
    """What it runs (and its seeds where a suite file caps them) on 2 cores (``evoboard list suites`` shows it)."""
    claims: tuple[Claim, ...]
    suite_file: str | None = None
    """A suite file beside this module (runs and baselines), run once per seed."""
    procedure: Callable[[Path, int, str], object] | None = None
    """(study folder, seeds, device): runs instead of ``suite_file``, writing the tables the claims read."""
    after: Callable[[Path], object] | None = None
    """Runs once the runs are done, writing a derived table the claims read (e.g. ``runs.csv``)."""
    needs: tuple[tuple[str, str], ...] = ()
    """(registry, name) pairs: ("algorithm", "random"), ("encoding", "small_dense"), ..."""
    seeds: int = 10
    """Seeds of its reference rows: paired claims need 8 or more to be decidable at all (1/2^n >= 0.025 below);
    10 wherever a run costs under about a minute (#24)."""

    def missing(self) -> list[str]:
        """The components this study needs that are not registered here (empty: it can run)."""
        from evoboard.agents import POLICIES
        from evoboard.agents.algorithms import ALGORITHMS
        from evoboard.agents.encodings import ENCODINGS

        registries = {"algorithm": ALGORITHMS, "encoding": ENCODINGS, "policy": POLICIES}
        return [f"{kind} {name}" for kind, name in self.needs if name not in registries[kind].names()]

    def command(self, seeds: int | None = None) -> str:
        return f"evoboard bench {self.name} --out results/reference --seeds {seeds or self.seeds}"


def run_specs(study: Study, folder: Path, seeds: int, device: str) -> None:
    """Every run of the study's suite file once per seed, into ``folder`` (checked before any starts).

    The runs go through the suite driver: on ``--jobs`` workers, a line each as it finishes, and a
    re-run of the study skips the (config, seed) already in ``folder`` and resumes the cut ones. A run
    with a ``tune`` grid first runs it on its tuning seeds into ``folder/tuning/`` (``suites.tuning``).
    """
    from evoboard.suite.suites.driver import run_all
    from evoboard.suite.suites.files import check_suite, load_suite
    from evoboard.suite.suites.tuning import tuned

    suite = load_suite(FOLDER / study.suite_file)
    check_suite(suite)
    suite = tuned(suite, folder, device, seeds)  # each tuned variant at its best sigma (tuning seeds, never reported)
    run_all([replace(spec, device=device) for spec in suite.for_seeds(seeds)], folder, study.name)


def run_study(study: Study, out: str | Path, seeds: int, device: str) -> list[dict]:
    """Run ``study`` into ``out/<name>/``, report it, test its claims; the claims' rows."""
    from evoboard.errors import UsageError

    missing = study.missing()
    if missing:
        raise UsageError(f"study {study.name} needs {', '.join(missing)}, not registered in this install")
    folder = Path(out) / study.name
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if study.procedure is not None:
        study.procedure(folder, seeds, device)
    else:
        run_specs(study, folder, seeds, device)
    if study.after is not None:
        study.after(folder)
    if (folder / "runs").is_dir():
        from evoboard.suite.board.report import write_report

        write_report(folder)
    rows = write_claims(folder, study.claims, study.command(seeds))
    stamp = consistent_sha(folder)
    with open(folder / "claims.md", "a") as f:
        f.write(f"\n{stamp}; {time.perf_counter() - start:.0f} s wall on this machine.\n")
    print(f"{study.name}: {time.perf_counter() - start:.0f} s; claims in {folder / 'claims.md'}")
    return rows


def consistent_sha(folder: Path) -> str:
    """One line saying which commit made the folder's leaderboard rows (and whether they agree)."""
    from evoboard.suite.board import leaderboard

    shas = sorted(set(leaderboard.read(folder)["git_sha"].dropna().astype(str)))
    if not shas:
        return "No leaderboard rows (a procedure's own tables only)"
    if len(shas) == 1:
        return f"Every row made at commit {shas[0]}"
    return f"WARNING: rows from several commits ({', '.join(shas)}): rerun into a fresh folder"


def run_reference(out: str | Path, seeds: int, device: str, studies: tuple[Study, ...] | None = None) -> list[dict]:
    """Every study into ``out/<study>/``, then ``out/claims.md`` (the claims table of all); prints the total time."""
    from evoboard.suite.studies.reference.catalogue import STUDIES

    start = time.perf_counter()
    rows = []
    for study in studies or tuple(STUDIES.values()):
        rows += run_study(study, out, seeds, device)
    total = time.perf_counter() - start
    path = collect_claims(out, seeds, note=f"total {total / 60:.1f} min")
    print(f"reference: {len(rows)} claims, total {total / 60:.1f} min; table in {path}")
    return rows


def collect_claims(out: str | Path, seeds: int = 5, device: str = "cpu", note: str = "") -> Path:
    """``out/claims.md``: the claims table of every study whose folder holds its ``claims.csv``, each with its
    commit-and-time line (studies run one by one, or by ``run_reference``)."""
    import pandas as pd

    from evoboard.suite.publish import machine
    from evoboard.suite.spec import RunnerOptions
    from evoboard.suite.studies.reference.catalogue import STUDIES
    from evoboard.suite.suites.tuning import tuning_markdown

    sections = []
    for study in STUDIES.values():
        folder = Path(out) / study.name
        if not (folder / "claims.csv").exists():
            sections.append(f"## {study.name}\n\nNot run: `{study.command()}`.\n")
            continue
        rows = pd.read_csv(folder / "claims.csv").to_dict("records")
        stamp = (folder / "claims.md").read_text().strip().splitlines()[-1]
        tuning = tuning_markdown(folder).replace("\n## ", "\n### ")
        sections.append(f"## {study.name}\n\n{claims_markdown(rows, study.command())}{tuning}\n{stamp}\n")
    text = "# Reference claims\n\n" + RULE + "\n\n" + "\n".join(sections)
    where = machine(device, RunnerOptions().threads)  # the runs' torch threads, not this process's
    text += f"\nMeasured on {where}; seeds as each command says" + (f"; {note}" if note else "") + ".\n"
    path = Path(out) / "claims.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rederive_claims(out: str | Path, note: str) -> Path:
    """Test every study's claims again on the rows already in ``out/<study>/`` (no run), keeping each study's
    commit-and-time line with ``note`` added; then ``out/claims.md``."""
    for study in _studies():
        folder = Path(out) / study.name
        if not (folder / "claims.md").exists():
            continue
        stamp = (folder / "claims.md").read_text().strip().splitlines()[-1].rstrip(".")
        write_claims(folder, study.claims, study.command())
        with open(folder / "claims.md", "a") as f:
            f.write(f"\n{stamp}; {note}.\n")
    return collect_claims(out)


def _studies() -> tuple[Study, ...]:
    """The catalogue's studies (it imports this module, so it is looked up late)."""
    from evoboard.suite.studies.reference.catalogue import STUDIES

    return tuple(STUDIES.values())
