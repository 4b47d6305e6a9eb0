"""``python -m evoboard.suite.speed.per_step_waste``: per-step work removed in issue #29, each measured side by side.

- Bounded Box actions: the head copied its low/high bounds to the output's device at every call;
  now once per device. Ops per call (torch.profiler) and time per call, the old and new head
  alternated; on the ``meta`` device the copies a CUDA run would make are counted (``aten::_to_copy``).
- Masked policies: every step materialised and masked every masked weight (and copied the
  masks); now once per actor. Ops and time per step of a masked MLP, old and new alternated.
- ``mutation_stats``: the parents evaluated beside their children were decoded after the
  population and evicted it from the encoding's two-decode cache, so the next generation
  replayed parents from their seeds. Per generation: parents the population's decode needed and
  did not find cached, and the mutation rows and initial vectors every decode computed. The old
  order is the old ``suite/runner.py``: run this with ``--label before`` on it.
Writes ``per_step_waste.md`` (and ``per_step_waste_cache.csv``, one row per label and generation).
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from evoboard.agents import make_policy
from evoboard.agents.encodings.dense import DenseEncoding
from evoboard.agents.masks import MaskedPolicy
from evoboard.agents.policies import ActionHead
from evoboard.suite.publish import machine, markdown_table
from evoboard.suite.runner import Run
from evoboard.suite.spec import RunSpec, resolve
from evoboard.suite.speed.harness import paired_medians

OBS, ACTIONS, POPULATION = 17, gym.spaces.Box(-1.0, 1.0, (6,)), 64
"""HalfCheetah's sizes: 17 observations, 6 bounded actions; a population of 64."""


def op_counts(fn: Callable[[], object]) -> Counter:
    """aten ops one call of ``fn`` runs, by name (torch.profiler on the CPU)."""
    fn()  # warm: first-call work (an upload kept per device) is not per step
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return Counter({e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")})


def old_head(space: gym.spaces.Box) -> Callable[[torch.Tensor], torch.Tensor]:
    """The bounded-Box head as it was: its bounds copied to the output's device at every call."""
    low = torch.as_tensor(space.low.ravel(), dtype=torch.float32)
    high = torch.as_tensor(space.high.ravel(), dtype=torch.float32)

    def head(out: torch.Tensor) -> torch.Tensor:
        lo, hi = low.to(out.device), high.to(out.device)
        return lo + (torch.tanh(out) + 1.0) * 0.5 * (hi - lo)

    return head


def row(change: str, what: str, before: Counter, after: Counter, paired=None) -> dict:
    """One table row: aten ops (nested ones included), tensor copies among them, and microseconds per call."""
    copies = "aten::_to_copy"  # on the CPU these are Python scalars made tensors; on a device, uploads too
    return {
        "change": change,
        "measured (one call)": what,
        "aten ops before": sum(before.values()),
        "aten ops after": sum(after.values()),
        "_to_copy before": before.get(copies, 0),
        "_to_copy after": after.get(copies, 0),
        "us before": round(paired.b * 1e6, 1) if paired else "",
        "us after": round(paired.a * 1e6, 1) if paired else "",
    }


ON_META = "meta device: its copies are uploads on CUDA"


def head_rows(repeats: int) -> list[dict]:
    """The bounded-Box head on a (P, 6) output: on the CPU (ops, time) and on meta (copies a device would make)."""
    new, old = ActionHead(ACTIONS), old_head(ACTIONS)
    out = torch.randn(POPULATION, ACTIONS.shape[0])
    assert torch.equal(new(out), old(out))  # the same actions, bit for bit
    calls = 1000
    paired = paired_medians(lambda: [new(out) for _ in range(calls)], lambda: [old(out) for _ in range(calls)], repeats)
    paired = type(paired)(paired.a / calls, paired.b / calls)
    meta = torch.empty(POPULATION, ACTIONS.shape[0], device="meta")
    change = "Box bounds once per device"
    return [
        row(change, "head, CPU", op_counts(lambda: old(out)), op_counts(lambda: new(out)), paired),
        row(change, f"head, {ON_META}", op_counts(lambda: old(meta)), op_counts(lambda: new(meta))),
    ]


def masked_rows(repeats: int) -> list[dict]:
    """A masked MLP (64, 64) stepping P members: masks applied every step (before) or once per actor (after)."""
    inner = make_policy("mlp", gym.spaces.Box(-1, 1, (OBS,)), ACTIONS)
    rng = np.random.default_rng(0)
    policy = MaskedPolicy(inner, {layer.name: rng.random(layer.weight_shape) < 0.8 for layer in inner.layers})
    rows, steps = [], 200
    for device in ("cpu", "meta"):
        encoding = DenseEncoding(policy, DenseEncoding.Options(), device)
        params = encoding.to_params(torch.randn(POPULATION, encoding.search_dims).to(device))
        obs = torch.randn(POPULATION, OBS).to(device)

        def before(params=params, obs=obs) -> torch.Tensor:
            return inner.act(policy.apply(params), obs)

        def after(params=params, obs=obs) -> torch.Tensor:
            return policy.act(params, obs)

        with torch.inference_mode():
            paired = None
            if device == "cpu":
                assert torch.equal(before(), after())
                paired = paired_medians(lambda: [after() for _ in range(steps)],
                                        lambda: [before() for _ in range(steps)], repeats)  # fmt: skip
                paired = type(paired)(paired.a / steps, paired.b / steps)
            where = "CPU" if device == "cpu" else ON_META
            what = f"masked mlp(64,64) step of P={POPULATION}, {where}"
            rows.append(row("masks once per actor", what, op_counts(before), op_counts(after), paired))
    return rows


def cache_rows(label: str, generations: int, out: Path) -> list[dict]:
    """Digits GA (P=16, mutation_stats on): per generation, parents replayed and the mutation work of every decode.

    Mutation rows: 15 children a generation is the floor (P less the elite); more is replay work."""
    spec = RunSpec("digits", population=16, generations=generations, seed=0, device="cpu")
    run = Run(resolve(spec), out)
    encoding = run.encoding
    counts = Counter()
    decode, mutate, init_vector = encoding.decode, encoding.mutate, encoding.init_vector

    def counted_decode(genomes):  # what each decode did not find cached: it replays it from seeds
        new = [tuple(g) for g in genomes if tuple(g) not in encoding._cache]
        needed = {g if len(g) == 1 else g[:-1] for g in new}  # an initial member itself, else its parent
        counts["replayed"] += sum(g not in encoding._cache for g in needed)
        if len(genomes) == spec.population:  # the population's children whose parent had to be replayed
            counts["orphans"] += sum(len(g) > 1 and g[:-1] not in encoding._cache for g in new)
        return decode(genomes)

    def counted_mutate(parents, seeds):
        counts["mutation_rows"] += len(seeds)
        return mutate(parents, seeds)

    def counted_init(seed):
        counts["init_vectors"] += 1
        return init_vector(seed)

    encoding.decode, encoding.mutate, encoding.init_vector = counted_decode, counted_mutate, counted_init
    rows = []

    def reporter(history_row: dict, total: int) -> None:
        rows.append({"label": label, "generation": history_row["generation"],
                     "parents replayed from seeds": counts["replayed"],
                     "children of a replayed parent": counts["orphans"], "mutation rows": counts["mutation_rows"],
                     "initial vectors": counts["init_vectors"]})  # fmt: skip
        counts.clear()

    run.reporter = reporter
    run.run()
    return rows


def table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table, every cell as it prints."""
    return markdown_table([str(c) for c in frame.columns], [[str(v) for v in r] for r in frame.itertuples(index=False)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--label", default="after", help="names this code's mutation_stats rows (before/after)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    steps = pd.DataFrame(head_rows(args.repeats) + masked_rows(args.repeats))
    with tempfile.TemporaryDirectory() as tmp:
        cache = pd.DataFrame(cache_rows(args.label, args.generations, Path(tmp)))
    path = out / "per_step_waste_cache.csv"
    if path.exists():  # keep the other label's rows (the run on the old runner)
        cache = pd.concat([pd.read_csv(path).query("label != @args.label"), cache])
    cache.to_csv(path, index=False)
    text = [
        "# Per-step waste removed (issue #29)",
        "",
        f"Machine: {machine('cpu', 1)}; other jobs running. Times are medians of the old and new code alternated",
        "in one run (per call, over batches of calls); ops are aten ops one call runs (torch.profiler, nested",
        "ones included). The bounds and masks were copied to the output's device at every call: on the CPU that",
        "copy is free, on the meta device it shows as the ``_to_copy`` a CUDA run would make (an upload).",
        "Lowrank-perturb (not changed here, ``agents/encodings/perturbed_layers.py``: ``_segments``) reads",
        "``bincount(...).tolist()`` and ``bool(...all())`` from the device once per shared layer per form: two",
        "host syncs per shared layer per decode and per gathered active set, not per step.",
        "",
        "Commands: `python -m evoboard.suite.speed.per_step_waste --out results --repeats 9` (label after);",
        "the before rows of the cache table: the same with `--label before`, run with `suite/runner.py` of",
        "3e1064c checked out (it evaluated the parents after the population).",
        "",
        table(steps),
        "",
        "## mutation_stats and the two-decode cache (digits, GA, P=16, dense, seed 0)",
        "",
        "Parents (or, at generation 0, initial members) a decode did not find in the encoding's cache and",
        "drew from their seeds; children whose parent that was; mutation rows every decode of the generation",
        "computed (15 children is the floor: P less the elite) and initial vectors drawn.",
        "",
        table(cache.sort_values(["label", "generation"])),
        "",
    ]
    (out / "per_step_waste.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
