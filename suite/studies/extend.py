"""``evoboard bench STUDY --add encoding=NAME``: a new variant run where the study runs its own, then its claims.

A study compares encodings (or algorithms) under its searches; a new one is judged by the same
runs: each of the study's search runs (not its baselines, count models or gradient references)
with the encoding (or algorithm) swapped for NAME, the same tasks, budget, settings and seeds, and
only those, into the study's folder beside its rows. A setting the new component does not take
(``sigma`` for a plugin with its own knob) is dropped with a line; a combination its declared
capabilities rule out (an ES needs ``uncorrelated_noise``) is skipped with a line. The study's
claims are then derived again with NAME against every variant it replaces, each gated by the
study's floor and pooled by its scale, all in one Holm family with the study's own claims
(``added.json`` in the folder remembers what was added, so a later ``--add`` keeps them).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from evoboard.agents.algorithms import ALGORITHMS, BASELINES, SearchAlgorithm
from evoboard.agents.encodings import ENCODINGS
from evoboard.errors import UsageError
from evoboard.suite.board import leaderboard
from evoboard.suite.spec import RunSpec, lookup
from evoboard.suite.studies.claims import Claim, Comparison, Sample, Scale, flat
from evoboard.suite.studies.reference import FOLDER, Study

KINDS = {"encoding": ENCODINGS, "algorithm": ALGORITHMS}
RECORD = "added.json"


def parse_additions(values: list[str]) -> list[tuple[str, str]]:
    """``encoding=NAME`` / ``algorithm=NAME`` pairs, each name checked against its registry."""
    out = []
    for value in values:
        kind, _, name = value.partition("=")
        if kind not in KINDS or not name:
            raise UsageError(f"--add {value}: expected encoding=NAME or algorithm=NAME")
        lookup(KINDS[kind].names(), kind, name, KINDS[kind].get)
        out.append((kind, name))
    return out


def searches(spec: RunSpec) -> bool:
    """A run of the study's variants: an ask/tell search that is not a baseline."""
    return spec.algorithm not in BASELINES and issubclass(ALGORITHMS.get(spec.algorithm), SearchAlgorithm)


def unusable(spec: RunSpec) -> str:
    """Why the spec's algorithm (or masks, or a start checkpoint) cannot use its encoding, from the declared
    capabilities; "" when it can."""
    encoding, needs = ENCODINGS.get(spec.encoding), getattr(ALGORITHMS.get(spec.algorithm), "needs", "")
    if needs and not getattr(encoding, needs, False):
        return f"{spec.algorithm} needs an encoding that declares {needs}, and {spec.encoding} does not"
    if (spec.settings.get("mask") or spec.settings.get("init")) and not encoding.searches_weights:
        return f"a mask or start checkpoint needs searches_weights, and {spec.encoding} does not declare it"
    return ""


def accepted(spec: RunSpec) -> set[str]:
    """The ``--set`` keys the spec's components take."""
    from evoboard.suite.setting_list import applicable

    return {s.key for s in applicable(spec.task, spec.encoding, spec.algorithm, spec.policy, spec.backend)}


def swap(spec: RunSpec, kind: str, name: str) -> tuple[RunSpec | None, str]:
    """``spec`` with its encoding (or algorithm) replaced by ``name``, less the settings ``name`` does not take;
    None with the reason when the capabilities rule the combination out. The line says what changed."""
    new = replace(spec, **{kind: name})
    label = f"{new.encoding}/{new.algorithm} on {new.task}"
    if why := unusable(new):
        return None, f"skipped {label}: {why}"
    dropped = sorted(set(new.settings) - accepted(new))
    if not dropped:
        return new, ""
    them = "it" if len(dropped) == 1 else "them"
    note = f"{label}: dropped {', '.join(f'{k}={new.settings[k]}' for k in dropped)} ({name} does not take {them})"
    return replace(new, settings={k: v for k, v in new.settings.items() if k not in dropped}), note


def study_searches(study: Study, seeds: int = 1) -> list[RunSpec]:
    """The study's search runs (its variants, no baselines), once per seed."""
    from evoboard.suite.suites.files import check_suite, load_suite

    if study.suite_file is None:
        raise UsageError(f"--add needs a study that runs a suite file ({', '.join(file_studies())}); "
                         f"{study.name} is a procedure")  # fmt: skip
    suite = load_suite(FOLDER / study.suite_file)
    check_suite(suite)
    base = [s for s in suite.for_seeds(seeds) if searches(s)]
    if not base:
        raise UsageError(f"study {study.name} runs no search over encodings: nothing to add to")
    return base


def swapped(study: Study, additions: list[tuple[str, str]], seeds: int, device: str) -> tuple[list[RunSpec], list[str]]:
    """The new runs (each once, per seed) and one line per skipped combination or dropped setting."""
    specs: dict[str, RunSpec] = {}
    notes: dict[str, None] = {}
    for kind, name in additions:
        for spec in study_searches(study, seeds):
            if getattr(spec, kind) == name:
                continue  # the study runs it already
            new, note = swap(replace(spec, device=device), kind, name)
            if note:
                notes[note] = None
            if new is not None:
                specs.setdefault(json.dumps(vars(new), sort_keys=True, default=str), new)
    return list(specs.values()), list(notes)


def file_studies() -> list[str]:
    from evoboard.suite.studies.reference.catalogue import STUDIES

    return [name for name, study in STUDIES.items() if study.suite_file]


GROUP = ["task", "encoding", "algorithm"]


def _flat(specs: list[RunSpec]) -> pd.DataFrame:
    """The specs' resolved configs flattened as the leaderboard's claims read them (``claims.flat``)."""
    from evoboard.suite.spec import resolve

    return flat(pd.DataFrame({"config": [resolve(s).config_json() for s in specs]}))


def _sample(config: pd.Series, keys: list[str]) -> Sample:
    extra = {k: (None if pd.isna(config.get(k)) else config.get(k)) for k in keys}
    shown = "".join(f", {k}={v}" for k, v in extra.items() if v is not None)
    return Sample(f"{config['encoding']}/{config['algorithm']}{shown}", {**{k: config[k] for k in GROUP[1:]}, **extra})


def added_claims(study: Study, folder: Path, additions: list[tuple[str, str]]) -> tuple[Claim, ...]:
    """NAME against each variant it stands in for (per algorithm, or per encoding), gated by the study's floor
    and pooled by its scale; a setting that tells two runs of one variant apart (``elite_margin``) joins the labels."""
    from evoboard.suite.board.compare import study_rule

    floor, scale = study_rule(folder) or (None, None)
    base = study_searches(study)
    pairs = [(i, kind, name) for kind, name in additions for i, s in enumerate(base) if getattr(s, kind) != name]
    news = [swap(base[i], kind, name)[0] for i, kind, name in pairs]
    pairs, news = [p for p, n in zip(pairs, news, strict=True) if n], [n for n in news if n]
    configs = _flat(base + news)  # a key that varies within one (task, encoding, algorithm) names the variant too
    fixed = {*GROUP, "config", "seed", "device", "threads"}
    by = [configs[g] for g in GROUP]
    keys = [c for c in configs.columns if c not in fixed and (configs[c].map(repr).groupby(by).nunique() > 1).any()]
    several = len({s.task for s in base}) > 1  # pool normalized scores, 0 at the floor and 1 at Y, as compare does
    claims: dict[str, Claim] = {}
    for j, (i, kind, name) in enumerate(pairs):
        x, y = _sample(configs.iloc[len(base) + j], keys), _sample(configs.iloc[i], keys)
        requires = (Comparison(x, floor), Comparison(y, floor)) if floor is not None else ()
        pool = scale or (Scale(floor, y) if several and floor is not None and floor.constant is None else None)
        claims.setdefault(x.label + " | " + y.label, Claim(f"{x.label} beats {y.label}", f"added ({kind} {name})",
                          Comparison(x, y), requires, pool))  # fmt: skip
    return tuple(claims.values())


def recorded(folder: Path, additions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``additions`` after those added to this folder before, written back to ``added.json``."""
    path = folder / RECORD
    before = [tuple(a) for a in json.loads(path.read_text())] if path.exists() else []
    merged = list(dict.fromkeys([*before, *additions]))
    path.write_text(json.dumps(merged) + "\n")
    return merged  # type: ignore[return-value]


def commits(folder: Path, additions: list[tuple[str, str]]) -> str:
    """Which commits made the study's rows and which the added variants' (they differ when added later)."""
    board = leaderboard.read(folder)
    added = pd.Series(False, index=board.index)
    for kind, name in additions:
        added |= board[kind] == name
    shas = [", ".join(sorted(set(board.loc[m, "git_sha"].dropna().astype(str)))) or "-" for m in (~added, added)]
    return f"The study's rows made at commit {shas[0]}, the added variants' at {shas[1]}"


def add_variants(study_name: str, values: list[str], out: Path, seeds: int, device: str) -> list[dict]:
    """``evoboard bench STUDY --add ...``: the new runs into ``out/STUDY/``, then the study's claims with them."""
    from evoboard.suite.spec import resolve
    from evoboard.suite.studies.claims_report import write_claims
    from evoboard.suite.studies.reference.catalogue import STUDIES
    from evoboard.suite.suites.driver import run_all

    if study_name not in STUDIES:
        raise UsageError(f"--add needs a reference study ({', '.join(file_studies())}), got {study_name}")
    study, additions = STUDIES[study_name], parse_additions(values)
    specs, notes = swapped(study, additions, seeds, device)
    resolved = [resolve(spec) for spec in specs]  # every one checked before any starts
    folder = out / study.name
    folder.mkdir(parents=True, exist_ok=True)
    done = set(leaderboard.row_keys(leaderboard.read(folder)))  # (config, seed) already measured: not again
    todo = [r for r in resolved if leaderboard.run_key(r.config_json()) not in done]
    start = time.perf_counter()
    print(f"{study.name} --add {' '.join(values)}: {len(resolved)} runs at --seeds {seeds}, "
          f"{len(resolved) - len(todo)} already in {folder}", flush=True)  # fmt: skip
    for line in notes:
        print(f"  {line}", flush=True)
    if todo:  # on --jobs workers, a line per finished run, resumable like any suite
        run_all([r.spec for r in todo], folder, study.name)
    if study.after is not None:
        study.after(folder)
    every = recorded(folder, additions)
    claims = study.claims + added_claims(study, folder, every)
    command = f"evoboard bench {study.name} --add {' '.join(values)} --seeds {seeds}"
    rows = write_claims(folder, claims, command)
    with open(folder / "claims.md", "a") as f:
        f.write(f"\n{commits(folder, every)}; {len(claims)} claims in one Holm family; the added runs "
                f"{time.perf_counter() - start:.0f} s wall on this machine.\n")  # fmt: skip
    print(f"{study.name}: {len(todo)} runs added, {len(claims)} claims in {folder / 'claims.md'}")
    return rows
