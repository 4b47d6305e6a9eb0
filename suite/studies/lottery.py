"""``evoboard bench lottery``: iterative pruning of ES-trained networks, three ways (Lange & Sprekeler 2023).

For each task: train a dense network with SNES (round 0), then for each method prune 20% of
the remaining weights per round (keep ratio 0.8, global, biases never pruned) and train again
with the mask (``--set mask=PATH``, the same mechanism any run can use):
- ``snr``: score |mu| / sigma of the last SNES distribution, rewind survivors to their init;
- ``magnitude``: score |mu|, rewind;
- ``random``: a random mask with the same kept fraction; everything else as the other two.
Rewinding is training again from the same seed: the masked network starts from the surviving
weights' initial values, and the search holds only those weights (``evoboard.agents.encodings.masked``:
``search_dims`` drops, SNES's sigma learning rate follows the surviving D, as in es-lottery).
Every round of every method uses the run seed (so the same init and episode seeds); only the
mask differs, so the random baseline isolates the mask. (Lange & Sprekeler's random baseline
also re-initialises; evoboard keeps the init so that a difference is the mask's alone.)
Every round is an ordinary run with a leaderboard row.
Writes ``lottery.csv`` (task, method, round, kept fraction, final score) and ``lottery.png``
(score vs fraction of weights kept) in the output folder, masks under ``lottery/masks``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from evoboard.agents import pruning
from evoboard.agents.encodings.masked import MaskedSearch
from evoboard.agents.masks import kept_fraction, save_mask
from evoboard.suite.publish import publish, pyplot
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclasses.dataclass(frozen=True)
class LotteryTask:
    """One task of the procedure and its SNES budget."""

    task: str
    population: int
    generations: int
    rounds: int
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


TASKS = (
    LotteryTask("digits", population=32, generations=80, rounds=12, settings={"batch_size": 128}),
    LotteryTask("CartPole-v1", population=16, generations=12, rounds=8, settings={"max_steps": 200, "hidden": "16,16"}),
)
KEEP_RATIO = 0.8


def _train(task: LotteryTask, seed: int, mask: Path | None, out: Path, device: str) -> tuple[Run, dict]:
    settings = {**task.settings, **({"mask": str(mask)} if mask else {})}
    spec = RunSpec(task.task, algorithm="snes", population=task.population, generations=task.generations,
                   seed=seed, device=device, settings=settings)  # fmt: skip
    run = Run(resolve(spec), out)
    return run, run.run()


def full_state(encoding, state) -> tuple[torch.Tensor, torch.Tensor | None]:
    """SNES's mean and sigma over the full (unmasked) vector, float64 on the state's device: pruned weights
    mean 0, sigma 1 (never scored). ``host`` brings them to numpy for scoring."""
    mean = torch.as_tensor(state.mean).to(torch.float64)[None]  # (1, D), where the search kept it
    sigma = getattr(state, "sigma", None)
    sigma = torch.as_tensor(sigma).to(torch.float64)[None] if sigma is not None else None
    if isinstance(encoding, MaskedSearch):
        mean = encoding.expand(mean)
        sigma = encoding.expand(sigma, fill=1.0) if sigma is not None else None
    return mean[0], sigma[0] if sigma is not None else None


def host(t: torch.Tensor | None) -> np.ndarray | None:
    """A tensor on any device as a numpy array (one copy to the CPU); None stays None."""
    return None if t is None else t.detach().cpu().numpy()


def _result(task: LotteryTask, method: str, r: int, seed: int, kept: float, row: dict) -> dict:
    return {"task": task.task, "method": method, "round": r, "seed": seed, "kept": kept,
            "final_score": row["final_score"], "score_kind": row["score_kind"], "run_id": row["run_id"]}  # fmt: skip


def lottery(task: LotteryTask, seed: int, out: Path, device: str, keep_ratio: float = KEEP_RATIO) -> list[dict]:
    """Every method's rounds on one task and seed; one result row per (method, round)."""
    masks_dir = out / "lottery" / "masks"
    dense_run, dense_row = _train(task, seed, None, out, device)
    encoding = dense_run.encoding
    rows = [_result(task, m, 0, seed, 1.0, dense_row) for m in pruning.METHODS]
    for method in pruning.METHODS:
        mask, state, run_encoding = pruning.full_mask(encoding), dense_run.state, encoding
        for r in range(1, task.rounds):
            mean, sigma = map(host, full_state(run_encoding, state))
            score = pruning.scores(method, mean, sigma, encoding, seed=1000 * seed + r)
            mask = pruning.prune(score, mask, keep_ratio)
            path = save_mask(masks_dir / f"{task.task.replace('/', '-')}-{method}-s{seed}-r{r}.npz", mask)
            run, row = _train(task, seed, path, out, device)  # the same seed: rewound init, same episodes
            state, run_encoding = run.state, run.encoding
            kept = kept_fraction(mask)
            rows.append(_result(task, method, r, seed, kept, row))
            print(f"lottery {task.task} {method} round {r}: kept {kept:.3f}, score {row['final_score']:.4g}")
    return rows


def figure(table: pd.DataFrame) -> Figure:
    """Score vs fraction of weights kept, one panel per task, one line per method (mean over seeds)."""
    plt = pyplot()
    tasks = list(dict.fromkeys(table["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        sub = table[table["task"] == task]
        for method, group in sub.groupby("method", sort=False):
            mean = group.groupby("kept")["final_score"].mean().sort_index(ascending=False)
            ax.plot(mean.index, mean.values, marker="o", label=method)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("fraction of weights kept")
        ax.set_ylabel(sub["score_kind"].iloc[0])
        ax.set_title(f"{task}: SNES, pruned by round")
        ax.legend()
    return fig


def run_lottery(out: str | Path, seeds: int, device: str, tasks: tuple[LotteryTask, ...] = TASKS) -> pd.DataFrame:
    """The whole procedure for seeds 0..seeds-1; writes lottery.csv and lottery.png into ``out``."""
    out = Path(out)
    rows = [row for seed in range(seeds) for task in tasks for row in lottery(task, seed, out, device)]
    table = pd.DataFrame(rows)
    publish(out, "lottery", table, figure=figure(table))
    summary = table.groupby(["task", "method", "round"]).agg(kept=("kept", "mean"), score=("final_score", "mean"))
    print(summary.unstack("method").to_string(float_format=lambda v: f"{v:.3f}"))
    return table
