"""Allocator churn with and without ``evoboard.suite.allocator``: user/system time, minor faults, peak RSS, frames/s.

Each case is one short ``python -m evoboard run`` under ``/usr/bin/time -v``, once with glibc's
defaults (``EVOBOARD_MALLOC=default``) and once with evoboard's settings, alternating, and
writes a Markdown table. Usage: ``python -m evoboard.suite.speed.allocator [--repeats N] [--md PATH]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

CASES = {
    "charlm/pydoc GA P=64 G=10": ["--task", "charlm/pydoc", "--population", "64", "--generations", "10"],  # #17's run
    "HalfCheetah-v5 GA P=64 G=2": ["--task", "HalfCheetah-v5", "--population", "64", "--generations", "2",
                                   "--set", "max_steps=200"],
    "ALE/Pong-v5 GA P=8 G=2": ["--task", "ALE/Pong-v5", "--population", "8", "--generations", "2",
                               "--set", "max_frames=2000"],
}  # fmt: skip
MODES = {"glibc default": "default", "evoboard": "keep"}
TIME_FIELDS = {
    "user_s": "User time (seconds)",
    "system_s": "System time (seconds)",
    "minor_faults": "Minor (reclaiming a frame) page faults",
    "max_rss_mb": "Maximum resident set size (kbytes)",
}


def measure(args: list[str], mode: str) -> dict[str, float]:
    """One run: /usr/bin/time -v figures and the generations' frames per second of wall time."""
    with tempfile.TemporaryDirectory() as out:
        cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "evoboard", "run", *args, "--seed", "0", "--out", out]
        env = {**os.environ, "EVOBOARD_MALLOC": mode}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        figures = {}
        for key, label in TIME_FIELDS.items():
            figures[key] = float(re.search(rf"{re.escape(label)}: ([\d.]+)", done.stderr).group(1))
        figures["max_rss_mb"] /= 1024
        figures["system_share"] = figures["system_s"] / (figures["user_s"] + figures["system_s"])
        history = pd.read_csv(next(Path(out).glob("runs/*/history.csv")))
        figures["frames_per_s"] = float(history["frames"].sum() / history["wall_s"].sum())
        figures["final_score"] = float(pd.read_csv(Path(out) / "leaderboard.csv")["final_score"].iloc[0])
    return figures


def table(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    columns = ["user_s", "system_s", "system_share", "minor_faults", "max_rss_mb", "frames_per_s", "final_score"]
    medians = frame.groupby(["case", "allocator"], sort=False)[columns].median().reset_index()
    medians["minor_faults"] = medians["minor_faults"].map(lambda v: f"{v / 1e6:.2f}M")
    lines = ["| " + " | ".join(medians.columns) + " |", "|" + " --- |" * len(medians.columns)]
    for row in medians.itertuples(index=False):
        lines.append("| " + " | ".join(map(cell, row)) + " |")
    return "\n".join(lines)


def cell(value: object) -> str:
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--md", default="results/allocator.md")
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases:
        for _ in range(args.repeats):
            for name, mode in MODES.items():  # alternate, so drift in the machine hits both
                rows.append({"case": case, "allocator": name, **measure(CASES[case], mode)})
                print(rows[-1], flush=True)
    machine = f"{os.cpu_count()} cores, CPU ({platform.machine()}), glibc {platform.libc_ver()[1]}"
    text = (
        f"# Allocator churn\n\n{machine}; medians of {args.repeats} run(s) each; "
        f"`python -m evoboard.suite.speed.allocator --repeats {args.repeats}`. frames_per_s is generation frames over "
        f"generation wall time (chars/s for char-LM); final_score must match between rows of a case.\n\n"
        f"{table(rows)}\n\nframes_per_s, evoboard over glibc default: "
        + ", ".join(f"{case} {ratio:.2f}x" for case, ratio in speedups(rows).items())
        + ". system_share is system time over user + system (CPU time).\n"
    )
    Path(args.md).parent.mkdir(parents=True, exist_ok=True)
    Path(args.md).write_text(text)
    print(text)
    print(f"median speed-up: {speedups(rows)}")


def speedups(rows: list[dict]) -> dict[str, float]:
    out = {}
    for case in dict.fromkeys(r["case"] for r in rows):
        fps = {m: statistics.median(r["frames_per_s"] for r in rows if r["case"] == case and r["allocator"] == m)
               for m in MODES}  # fmt: skip
        out[case] = round(float(fps["evoboard"] / fps["glibc default"]), 3)
    return out


if __name__ == "__main__":
    main()
