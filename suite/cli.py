"""``evoboard``: list, run, bench, leaderboard, resume.

Bad input (unknown name, impossible value, malformed ``--set``, unusable path) exits 2
with one line saying what is wrong and what would be valid: no traceback, nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import envs
from agents.algorithms import ALGORITHMS
from agents.encodings import ENCODINGS
from agents.policies import POLICIES
from evoboard.errors import RunFailed, UsageError, WriteFailed
from suite.allocator import keep_freed_memory
from suite.board import leaderboard
from suite.board.tables import AGGREGATE_SHOWN, render
from suite.progress import progress_reporter
from suite.runner import Run
from suite.settings import unknown_message
from suite.spec import DEVICES, RunSpec, parse_sets, resolve
from suite.suites import SUITES

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> Parser:
    parser = Parser(prog="evoboard", description="Neuroevolution benchmark suite.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("list", help="list tasks, encodings, algorithms or suites")
    p.add_argument("what", choices=["tasks", "encodings", "algorithms", "policies", "suites"])

    p = sub.add_parser("run", help="run one spec and append its leaderboard row")
    p.add_argument("--task", required=True)
    p.add_argument("--encoding", default="dense")
    p.add_argument("--algorithm", default="ga")
    p.add_argument("--policy", help="policy network (default: the task's own)")
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument(
        "--backend",
        default="local",
        help="where members are evaluated: local (default), processes (every core of this machine) or ray",
    )
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")

    p = sub.add_parser("bench", help="run a named suite")
    p.add_argument("suite")
    p.add_argument("--out", default="results")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--device", default="auto", choices=DEVICES)

    p = sub.add_parser("leaderboard", help="show the leaderboard")
    p.add_argument("--out", default="results")
    p.add_argument("--task")
    p.add_argument("--encoding")
    p.add_argument("--algorithm")
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown"])
    p.add_argument("--runs", action="store_true", help="one line per run instead of aggregates over seeds")

    p = sub.add_parser("resume", help="continue a run from its folder")
    p.add_argument("run_dir")

    p = sub.add_parser("report", help="plots and a Markdown report of a run folder or an output folder")
    p.add_argument("path")
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


def cmd_list(args: argparse.Namespace) -> None:
    if args.what == "tasks":
        for task_id in envs.names():
            print(f"{task_id:28s} {envs.resolve(task_id).note}")
        print("(any other gymnasium id with Box observations and Box or Discrete actions works too)")
    elif args.what == "suites":
        for suite in SUITES.values():
            size = "procedure" if suite.procedure else f"{len(suite.specs)} runs"
            print(f"{suite.name:16s} {size}: {suite.description}")
    else:
        registry = {"encodings": ENCODINGS, "algorithms": ALGORITHMS, "policies": POLICIES}[args.what]
        for name in registry.names():
            doc = (registry.get(name).__doc__ or "").strip().splitlines()
            print(f"{name:16s} {doc[0] if doc else ''}")


def cmd_run(args: argparse.Namespace) -> None:
    out = check_writable(args.out)
    spec = RunSpec(
        task=args.task,
        encoding=args.encoding,
        algorithm=args.algorithm,
        policy=args.policy,
        population=args.population,
        generations=args.generations,
        seed=args.seed,
        device=args.device,
        backend=args.backend,
        settings=parse_sets(args.sets),
    )
    resolved = resolve(spec)
    with progress_reporter(f"{spec.task} {spec.encoding}/{spec.algorithm} s{spec.seed}") as reporter:
        row = Run(resolved, out, reporter).run()
    print_row(row)


def print_row(row: dict) -> None:
    print(
        f"{row['task']} {row['encoding']}/{row['algorithm']} seed {row['seed']}: "
        f"best_fitness {row['best_fitness']:.4g}, final_score {row['final_score']:.4g} ({row['score_kind']}), "
        f"{row['frames']:,} frames ({row['frames_saved']:,} saved), {row['frames_per_s']:,.0f} frames/s, "
        f"{row['wall_s']:.1f} s -> {row['run_id']}"
    )


def cmd_bench(args: argparse.Namespace) -> None:
    if args.suite not in SUITES:
        raise UsageError(unknown_message("suite", args.suite, SUITES))
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    out = check_writable(args.out)
    if SUITES[args.suite].procedure is not None:
        SUITES[args.suite].procedure(str(out), args.seeds, args.device)
        return
    specs = SUITES[args.suite].for_seeds(args.seeds)
    resolved = [resolve(RunSpec(**{**vars(s), "device": args.device})) for s in specs]  # all checked first
    run_ids = []
    for i, spec in enumerate(resolved, 1):
        label = f"[{i}/{len(resolved)}] {spec.spec.task} {spec.spec.encoding}/{spec.spec.algorithm} s{spec.spec.seed}"
        with progress_reporter(label) as reporter:
            row = Run(spec, out, reporter).run()
        print_row(row)
        run_ids.append(row["run_id"])
    table = leaderboard.read(out)
    print(render(leaderboard.ranked(table[table["run_id"].isin(run_ids)]), "table"))


def cmd_leaderboard(args: argparse.Namespace) -> None:
    """Aggregates over seeds (n, mean, IQM and its 95% bootstrap CI), or every run with --runs."""
    if not leaderboard.path_in(args.out).exists():
        raise UsageError(f"no leaderboard in {args.out} (expected {leaderboard.path_in(args.out)})")
    table = leaderboard.read(args.out)
    for column in ("task", "encoding", "algorithm"):
        if getattr(args, column):
            table = table[table[column] == getattr(args, column)]
    if args.runs:
        print(render(leaderboard.ranked(table), args.format))
    else:
        print(render(leaderboard.aggregate(table), args.format, AGGREGATE_SHOWN))


def cmd_resume(args: argparse.Namespace) -> None:
    run = Run.resume(args.run_dir)
    with progress_reporter(f"resume {Path(args.run_dir).name}") as reporter:
        run.reporter = reporter
        row = run.run()
    print_row(row)


def cmd_report(args: argparse.Namespace) -> None:
    from suite.board.report import write_report  # matplotlib loads only for reports

    print(write_report(args.path))


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "bench": cmd_bench,
    "leaderboard": cmd_leaderboard,
    "resume": cmd_resume,
    "report": cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except (UsageError, leaderboard.LeaderboardError) as err:
        print(f"evoboard: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailed as err:
        print(f"evoboard: run failed: {err}", file=sys.stderr)
        return 1
    except WriteFailed as err:
        print(f"evoboard: write failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("evoboard: interrupted; resume with `evoboard resume <run folder>`", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
