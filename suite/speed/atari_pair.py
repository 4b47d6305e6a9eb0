"""Pong's throughput rows of two source trees, alternated in one session: a before/after comparison.

    python -m evoboard.suite.speed.atari_pair --before /tmp/before-pkg [--pairs 3] [--out results]
        [--set resets=snapshot] [--population 32] [--steps 250]

``--before`` is a folder holding an ``evoboard`` package of the older tree (its ``suite``, ``envs`` and
``agents`` inside it, as the wheel installs them); it goes first on ``PYTHONPATH`` of the *before*
subprocess, while *after* runs this checkout. Each pair runs ``throughput.atari_rows`` (P=32, 250-step
episodes, 1 torch thread, raw env beside every encoding) once in each tree, then once more in this tree
with the CNN in bfloat16, so all three see the same machine load; rows are the medians over the pairs.
``--set KEY=VALUE`` (repeatable) gives this checkout's rows an Atari setting the older tree may not know:
``--set resets=snapshot`` sets its snapshot resets against the older tree's ROM reloads (a ``--before`` copy
of this same tree compares the two drivers alone). Writes ``<out>/atari_pair.csv`` and ``<out>/atari_pair.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from evoboard.envs.atari import AtariOptions
from evoboard.errors import UsageError
from evoboard.suite.publish import machine, markdown_table, publish
from evoboard.suite.settings import build_options

SNIPPET = """
import json, torch
from evoboard.suite.speed.throughput import atari_rows
torch.set_num_threads(1)
kw = {{}} if {dtype!r} == "float32" else {{"dtypes": ({dtype!r},)}}
if {settings!r}:
    kw["task_settings"] = {settings!r}  # only this checkout's atari_rows takes it
print(json.dumps(atari_rows("pong", {population}, {steps}, 1, 1, **kw)))
"""


def rows_of(
    tree: str, pkg: str | None, dtype: str, population: int, steps: int = 250, settings: dict | None = None
) -> list[dict]:
    """One ``atari_rows`` call in a subprocess of ``tree`` ('before' with ``pkg`` on PYTHONPATH, or 'after')."""
    env = dict(os.environ, PYTHONPATH=pkg) if pkg else dict(os.environ)
    code = SNIPPET.format(dtype=dtype, population=population, steps=steps, settings=settings or {})
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    for row in rows:
        row.setdefault("resets", "reload")  # a tree before the setting existed reloads the ROM
        row.update(tree=tree, dtype=dtype, reset_ms_per_episode=1e3 * row["reset_s"] / population)
    return rows


def run(
    before: str, out: Path, pairs: int = 3, population: int = 32, steps: int = 250, settings: dict | None = None
) -> pd.DataFrame:
    """``settings``: Atari settings for this checkout's rows only (``{"resets": "snapshot"}``)."""
    runs = []
    for _ in range(pairs):
        runs += rows_of("before", before, "float32", population, steps)
        runs += rows_of("after", None, "float32", population, steps, settings)
        runs += rows_of("after", None, "bfloat16", population, steps, settings)
    keys = ["tree", "resets", "dtype", "encoding"]
    numbers = ["raw_steps_per_s", "evoboard_steps_per_s", "ratio_vs_raw", "env_s", "policy_s", "decode_s", "reset_s",
               "reset_ms_per_episode"]  # fmt: skip
    table = pd.DataFrame(runs).groupby(keys, sort=False)[numbers].median().reset_index()
    table["pairs"] = pairs
    table["machine"] = machine("cpu", pd.Series([1] * len(table)))
    publish(out, "atari_pair", table, markdown(table))
    return table


def markdown(table: pd.DataFrame) -> str:
    header = ["tree", "resets", "dtype", "encoding", "raw steps/s", "evoboard steps/s", "vs raw", "env s", "policy s",
              "decode s", "reset s", "reset ms/episode"]  # fmt: skip
    rows = [[r["tree"], r["resets"], r["dtype"], r["encoding"], f"{r['raw_steps_per_s']:,.0f}",
             f"{r['evoboard_steps_per_s']:,.0f}", f"{r['ratio_vs_raw']:.2f}x", f"{r['env_s']:.2f}",
             f"{r['policy_s']:.2f}", f"{r['decode_s']:.3f}", f"{r['reset_s']:.2f}",
             f"{r['reset_ms_per_episode']:.1f}"] for r in table.to_dict("records")]  # fmt: skip
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="folder holding the older tree's evoboard package")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--population", type=int, default=32, help="members, and envs side by side")
    parser.add_argument("--steps", type=int, default=250, help="env steps per episode")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="an Atari setting for this checkout's rows only: resets=snapshot")  # fmt: skip
    args = parser.parse_args(argv)
    malformed = [kv for kv in args.sets if "=" not in kv or not kv.split("=", 1)[0]]
    if malformed:
        parser.error(f"--set takes KEY=VALUE, got {malformed[0]!r}")
    settings = dict(kv.split("=", 1) for kv in args.sets)
    try:
        build_options(AtariOptions, {"max_steps": args.steps, **settings})  # checked here, not in a subprocess
    except UsageError as err:
        parser.error(str(err))
    print(run(args.before, args.out, args.pairs, args.population, args.steps, settings).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
