"""``evoboard``: list, run, bench, leaderboard, compare, resume, replay, suite show, report.

Bad input (unknown name, impossible value, malformed ``--set``, unusable path) exits 2
with one line saying what is wrong and what would be valid: no traceback, nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from evoboard import envs, lazy
from evoboard.agents.algorithms import ALGORITHMS
from evoboard.agents.encodings import ENCODINGS
from evoboard.agents.policies import POLICIES
from evoboard.errors import EvoboardError, RunFailed, UsageError
from evoboard.suite.allocator import keep_freed_memory
from evoboard.suite.board import leaderboard
from evoboard.suite.board.tables import AGGREGATE_SHOWN, SHOWN, render
from evoboard.suite.config import SPEC_TYPES, RunFiles, run_file
from evoboard.suite.flags import add_flags
from evoboard.suite.progress import reporting
from evoboard.suite.runner import Run
from evoboard.suite.setting_list import applicable, render_settings
from evoboard.suite.settings import plain, unknown_message
from evoboard.suite.spec import DEVICES, RunSpec, parse_sets, resolve
from evoboard.suite.suites import SUITES, Suite, load_suite
from evoboard.suite.suites.driver import default_jobs, run_suite, runner_for, using_workers
from evoboard.suite.suites.files import check_suite
from evoboard.suite.tracking import LOGGERS, require

LISTS = ["tasks", "encodings", "algorithms", "policies", "suites", "settings"]


class Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _run_options(p: argparse.ArgumentParser) -> None:
    """``run``'s flags, from their one declaration (``RunSpec``'s and ``RunFiles``' fields), and ``--set``."""
    add_flags(p, RunSpec, RunFiles)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a component setting, repeatable (see `evoboard list settings`)")  # fmt: skip


def build_parser() -> Parser:
    parser = Parser(prog="evoboard", description="Neuroevolution benchmark suite.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    shown = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}

    p = sub.add_parser("list", help="list tasks, encodings, algorithms, policies, suites or settings", **shown)
    p.add_argument("what", choices=LISTS, help="what to list")
    p.add_argument("--task", help="settings: the task's keys, with its standard defaults")
    p.add_argument("--encoding", default="dense", help="settings: the encoding's keys")
    p.add_argument("--algorithm", default="ga", help="settings: the algorithm's keys")
    p.add_argument("--policy", help="settings: the policy's keys (default: the task's own, else mlp)")
    p.add_argument("--backend", default="local", help="settings: the backend's keys")

    _run_options(sub.add_parser("run", help="run one spec and append its leaderboard row"))

    p = sub.add_parser("bench", help="run a named suite or a suite file", **shown)
    p.add_argument("suite", help="a suite name (see `evoboard list suites`) or a suite file (.toml)")
    p.add_argument("--out", default="results", help="output folder")
    p.add_argument("--seeds", type=int, default=1, help="every run once per seed 0..K-1")
    p.add_argument("--device", default="auto", choices=DEVICES, help="torch device; auto: cuda where torch sees it")
    p.add_argument("--log", choices=LOGGERS, help="also log each generation's history row")
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="runs at once, each in its own worker process (default: the CPUs this process may use)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="each run as a Ray task on the cluster at ADDRESS (auto, HOST:6379); alone: a local instance",
    )
    p.add_argument("--rerun", action="store_true",
                   help="run every run again, even those whose row is already there (default: skip them)")  # fmt: skip
    p.add_argument("--add", action="append", default=[], metavar="KIND=NAME",
                   help="a reference study only: run encoding=NAME (or algorithm=NAME) where the study runs its own, "
                        "then derive its claims with it (repeatable; docs/compare.md)")  # fmt: skip

    p = sub.add_parser("leaderboard", help="show the leaderboard", **shown)
    p.add_argument("--out", default="results", help="output folder holding leaderboard.csv")
    p.add_argument("--task", help="only this task")
    p.add_argument("--encoding", help="only this encoding")
    p.add_argument("--algorithm", help="only this algorithm")
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown"], help="output format")
    p.add_argument("--runs", action="store_true",
                   help="one line per run instead of aggregates over seeds; a second row of the same (config, seed) "
                        "names the row that counts (duplicate_of)")  # fmt: skip

    p = sub.add_parser("compare", help="two variants of a leaderboard by the claims' decision rule", **shown)
    p.add_argument("x", help="variant X: encoding/algorithm, a bare name, or key=value filters joined by commas")
    p.add_argument("y", help="variant Y, the same way")
    p.add_argument("--out", default="results", help="output folder holding leaderboard.csv")
    p.add_argument("--task", help="only this task (default: every task both variants ran)")
    p.add_argument(
        "--floor", help="the variant both must beat (default: the study's floor, else random/unigram/bigram)"
    )
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown"], help="output format")

    p = sub.add_parser("resume", help="continue a run from its folder", **shown)
    p.add_argument("run_dir", help="a run folder, results/runs/<run_id>")
    p.add_argument("--log", choices=LOGGERS, help="also log each generation's history row")

    p = sub.add_parser("replay", help="play a finished run's elite on its held-out episodes", **shown)
    p.add_argument("run_dir", help="a finished run folder, results/runs/<run_id>")
    p.add_argument("--episodes", type=int, help="held-out episodes to play (default: the run's eval_episodes)")
    p.add_argument("--gif", metavar="FILE", help="write the first episode as an animated GIF")
    p.add_argument("--device", choices=DEVICES, help="torch device (default: the run's)")

    p = sub.add_parser("suite", help="show a built-in suite as the TOML file a user can copy", **shown)
    p.add_argument("action", choices=["show"], help="show: print the suite file")
    p.add_argument("name", help="a built-in suite (see `evoboard list suites`)")

    p = sub.add_parser("report", help="plots and a Markdown report of a run folder or an output folder", **shown)
    p.add_argument("path", help="a run folder or an output folder")
    return parser


def check_writable(out: str) -> Path:
    """The output folder, or a UsageError if it cannot be created or written."""
    path = Path(out)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UsageError(f"output folder {out} is not writable ({probe} is not a writable folder)")
    return path


def describe(cls: type) -> str:
    """A component's one-line description: its docstring's first line, else its module's, without markup."""
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):  # a dataclass's generated signature is no description
        doc = ""
    if not doc.strip():
        doc = sys.modules[cls.__module__].__doc__ or ""
    first = plain((doc.strip().splitlines() or [""])[0])
    return re.sub(r"^--\w+ [\w-]+: ", "", first)  # "--algorithm adam: backprop ..." -> "backprop ..."


def cmd_list(args: argparse.Namespace) -> None:
    if args.what == "tasks":
        for task_id in envs.names():
            print(f"{task_id:28s} {envs.resolve(task_id).note}")
        print("(any other gymnasium id with Box observations and Box or Discrete actions works too)")
    elif args.what == "suites":
        for suite in SUITES.values():
            size = "procedure" if suite.procedure else f"{len(suite.specs)} runs"
            print(f"{suite.name:18s} {size}: {suite.description}")
    elif args.what == "settings":
        print(render_settings(applicable(args.task, args.encoding, args.algorithm, args.policy, args.backend)))
    else:
        registry = {"encodings": ENCODINGS, "algorithms": ALGORITHMS, "policies": POLICIES}[args.what]
        for name in registry.names():
            print(f"{name:16s} {describe(registry.get(name))}")


def run_spec_from(args: argparse.Namespace, settings: dict[str, Any] | None = None) -> tuple[RunSpec, str, str | None]:
    """The spec, output folder and log of ``run``: defaults, then the --config file, then the flags.

    ``settings`` (typed values from Python, ``evoboard.run``'s keywords) come last, after ``--set``.
    """
    spec, extra = run_file(args.config) if args.config else (None, {})
    flags = {k: getattr(args, k) for k in SPEC_TYPES if getattr(args, k, None) is not None}
    if spec is None:
        if "task" not in flags:
            raise UsageError("run needs --task (or a --config file that names a task)")
        spec = RunSpec(**flags)
    else:
        spec = dataclasses.replace(spec, **flags)
    spec = dataclasses.replace(spec, settings={**spec.settings, **parse_sets(args.sets), **(settings or {})})
    return spec, args.out or extra.get("out", RunFiles.out), args.log or extra.get("log")


def execute(run: Run, label: str, log: str | None) -> dict:
    """Run to the end with the progress bar (and tracker) attached; returns the leaderboard row."""
    with reporting(label, log, lambda: run.run_dir.path / "tensorboard") as reporter:
        run.reporter = reporter
        return run.run()


def run_command(args: argparse.Namespace, settings: dict[str, Any] | None = None) -> tuple[dict, Path]:
    """``run`` after parsing (the CLI's, or ``evoboard.run``'s): checked in full, then run; its row and run folder."""
    started = time.perf_counter()  # the row's wall_s: from here (after imports) to the row
    spec, out_name, log = run_spec_from(args, settings)
    require(log)
    out = check_writable(out_name)
    run = Run(resolve(spec), out, started=started)
    row = execute(run, f"{spec.task} {spec.encoding}/{spec.algorithm} s{spec.seed}", log)
    return row, run.run_dir.path


def cmd_run(args: argparse.Namespace) -> None:
    print_row(run_command(args)[0])


def print_row(row: dict) -> None:
    print(
        f"{row['task']} {row['encoding']}/{row['algorithm']} seed {row['seed']}: "
        f"best_fitness {row['best_fitness']:.4g}, final_score {row['final_score']:.4g} ({row['score_kind']}), "
        f"{row['frames']:,} frames ({row['frames_saved']:,} saved), {row['frames_per_s']:,.0f} frames/s, "
        f"{row['wall_s']:.1f} s -> {row['run_id']}"
    )


def bench_suite(name: str) -> Suite:
    """A built-in suite by name, or a suite file by path (its keys checked)."""
    if name in SUITES:
        return SUITES[name]
    if name.endswith(".toml") or Path(name).is_file():
        suite = load_suite(name)
        check_suite(suite)
        return suite
    raise UsageError(unknown_message("suite", name, SUITES) + " (or a suite file, NAME.toml)")


def cmd_bench(args: argparse.Namespace) -> None:
    suite = bench_suite(args.suite)
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    workers = default_jobs() if args.jobs is None else args.jobs
    if workers < 1:
        raise UsageError(f"--jobs must be >= 1, got {workers}")
    require(args.log)
    out = check_writable(args.out)
    if args.add:  # only the added variant's runs into the study's folder, then its claims (#27)
        return lazy.load("evoboard.suite.studies.extend:add_variants")(
            args.suite, args.add, out, args.seeds, args.device
        )
    if suite.procedure is not None:
        with using_workers(workers):
            suite.procedure(str(out), args.seeds, args.device)
        return
    if suite.tunes:  # each tuned run at its best setting, from runs on seeds never reported (#24)
        with using_workers(workers):
            suite = lazy.load("evoboard.suite.suites.tuning:tuned")(suite, out, args.device, args.seeds)
    specs = suite.for_seeds(args.seeds)
    resolved = [resolve(RunSpec(**{**vars(s), "device": args.device})) for s in specs]  # all checked first
    table, failed = run_suite(suite.name, resolved, out, runner_for(workers, args.ray, out), args.rerun, args.log)
    print(render(table, "table"))
    if suite.compare:  # the suite file's [[compare]] claims beside its leaderboard (#27)
        lazy.load("evoboard.suite.board.compare:write_suite_claims")(out, suite.compare, f"evoboard bench {args.suite}")
    if failed:
        first = "; ".join(f"{label}: {error}" for label, error in failed[:2])
        raise RunFailed(f"{len(failed)} run(s) failed ({first}); the same command runs them again")


def cmd_suite(args: argparse.Namespace) -> None:
    if args.name not in SUITES:
        raise UsageError(unknown_message("suite", args.name, SUITES))
    suite = SUITES[args.name]
    if suite.source is None:
        raise UsageError(f"suite {args.name} is a procedure (Python, suite/suites/builtin.py): it has no suite file")
    print(suite.source.read_text(), end="")


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """Aggregates over seeds (n, mean, IQM and its 95% bootstrap CI), or every run with --runs."""
    if not leaderboard.path_in(args.out).exists():
        raise UsageError(f"no leaderboard in {args.out} (expected {leaderboard.path_in(args.out)})")
    table = leaderboard.read(args.out)
    for column in ("task", "encoding", "algorithm"):
        if getattr(args, column):
            table = table[table[column] == getattr(args, column)]
    if args.runs:  # every row; one counted per (config, seed), the others name the row that counts
        marked = table.assign(duplicate_of=leaderboard.duplicates(table))
        print(render(leaderboard.ranked(marked), args.format, [*SHOWN, "duplicate_of"]))
    else:
        print(render(leaderboard.aggregate(table), args.format, AGGREGATE_SHOWN))


def cmd_compare(args: argparse.Namespace) -> None:
    """X against Y: per-task IQMs, the pooled comparison, P(X > Y), the exact test, floors, verdict, commits."""
    from evoboard.suite.board.compare import compare, render_comparison  # scipy and the studies load only here

    print(render_comparison(compare(args.out, args.x, args.y, args.task, args.floor), args.format))


def cmd_resume(args: argparse.Namespace) -> None:
    require(args.log)
    print_row(execute(Run.resume(args.run_dir), f"resume {Path(args.run_dir).name}", args.log))


def cmd_replay(args: argparse.Namespace) -> None:
    """Print the elite's held-out returns and score; write the GIF when asked."""
    from evoboard.suite.replay import imageio, replay, write_gif  # gymnasium's renderers load only for a replay

    gif = check_writable(str(Path(args.gif).parent)) / Path(args.gif).name if args.gif else None
    if gif is not None:
        imageio()  # a missing package is named before the episodes are played
    result = replay(args.run_dir, args.episodes, gif is not None, args.device)
    returns = ", ".join(f"{r:.6g}" for r in result.returns)
    print(f"returns over {len(result.returns)} held-out episodes: {returns}")
    saved = "" if result.saved_score is None else f" (the run's final_score: {result.saved_score:.6g})"
    print(f"{result.score_kind} {result.score:.6g}{saved}")
    if gif is not None:
        print(f"{write_gif(gif, result.frames)}: {len(result.frames)} frames of the first held-out episode")


def cmd_report(args: argparse.Namespace) -> None:
    from evoboard.suite.board.report import write_report  # matplotlib loads only for reports

    print(write_report(args.path))


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "bench": cmd_bench,
    "leaderboard": cmd_leaderboard,
    "compare": cmd_compare,
    "resume": cmd_resume,
    "replay": cmd_replay,
    "suite": cmd_suite,
    "report": cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()
    args = None
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except EvoboardError as err:  # each says its word and exit code: 2 for bad input, 1 for a run cut short
        print(f"evoboard: {err.label}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        again = (
            "run the same command again"
            if args is not None and args.command == "bench"
            else "`evoboard resume <run folder>`"
        )
        print(f"evoboard: interrupted; resume with {again}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
