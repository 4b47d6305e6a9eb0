"""The seven reference studies (#16) and the claims each tests; times are for their seeds on 2 cores.

Every claim names the floors its compared variants must beat (random search, unigram, chance) and,
where it pools tasks, its normalization (``Scale``). All seven run at 10 seeds (``Study.seeds``); a
suite file caps a run that costs minutes (Frostbite: ``max_seeds = 5``).
"""

from __future__ import annotations

from evoboard.suite.studies.claims import Claim, Comparison, Sample, Scale
from evoboard.suite.studies.reference import Study
from evoboard.suite.studies.reference import procedures as proc
from evoboard.suite.studies.reference.summary import summarize_history

GP = "Garbus & Pollack 2025"


def run(label: str, **where) -> Sample:
    """The leaderboard runs of one variant."""
    return Sample(label, where)


def floors(floor: Sample, *variants: Sample) -> tuple[Comparison, ...]:
    """Each variant against ``floor``: what must hold before a claim on them is decided either way."""
    return tuple(Comparison(v, floor) for v in variants)


CHANCE = Sample("chance 0.1", constant={"digits": 0.1})
"""Ten digit classes: a classifier that learned nothing."""


def _rl() -> Study:
    ga = {"algorithm": "ga"}
    lowrank, floor = run("lowrank/ga", encoding="lowrank", **ga), run("random", algorithm="random")
    dense, small = run("dense/ga", encoding="dense", **ga), run("small_dense/ga", encoding="small_dense", **ga)
    scale = Scale(floor, dense)  # per task: 0 = random search's IQM, 1 = dense/ga's
    return Study(
        "garbus-rl",
        "GA: dense, lowrank, small_dense + random search on HalfCheetah-v5 and Walker2d-v5, P=32, 30 generations; "
        "each encoding first tunes sigma per task (4 values x seeds 100-102, 10 generations)",
        (
            Claim(
                "factorized matches or beats dense (RL)",
                GP,
                Comparison(lowrank, dense),
                floors(floor, lowrank, dense),
                scale,
            ),
            Claim(
                "factorized beats the similar and smaller dense network",
                GP,
                Comparison(lowrank, small),
                floors(floor, lowrank, small),
                scale,
            ),
        ),  # fmt: skip
        suite_file="garbus-rl.toml",
        needs=(("algorithm", "random"), ("encoding", "small_dense")),
    )


def _charlm() -> Study:
    es, ga = {"algorithm": "openai-es"}, {"algorithm": "ga"}
    lowrank, dense = run("lowrank/openai-es", encoding="lowrank", **es), run("dense/openai-es", encoding="dense", **es)
    small = run("small_dense/openai-es", encoding="small_dense", **es)
    lowrank_ga, dense_ga = run("lowrank/ga", encoding="lowrank", **ga), run("dense/ga", encoding="dense", **ga)
    unigram = run("unigram", algorithm="unigram")
    return Study(
        "garbus-charlm",
        "charlm/pydoc: openai-es and GA x dense, lowrank, small_dense; unigram, bigram, adam; each encoding first "
        "tunes its step (4 values x seeds 100-102, a third of the generations)",
        (
            Claim(
                "factorized does notably well on language modeling",
                GP,
                Comparison(lowrank, dense),
                floors(unigram, lowrank, dense),
            ),
            Claim(
                "factorized beats the similar and smaller dense network (LM)",
                GP,
                Comparison(lowrank, small),
                floors(unigram, lowrank, small),
            ),
            Claim(
                "factorized does well under the GA too (LM)",
                GP,
                Comparison(lowrank_ga, dense_ga),
                floors(unigram, lowrank_ga, dense_ga),
            ),
        ),  # fmt: skip
        suite_file="garbus-charlm.toml",
        needs=(("algorithm", "unigram"), ("algorithm", "bigram"), ("encoding", "small_dense")),
    )


def _early_stop() -> Study:
    def per_run(label: str, encoding: str, value: str, margin: object) -> Sample:
        return Sample(label, {"encoding": encoding, "algorithm": "ga", "elite_margin": margin}, "runs", value)

    def saved(tasks: tuple[str, ...] | None = None) -> Comparison:
        """lowrank vs dense, both with elite_margin 100: the share of their frames the rules cut."""
        return Comparison(per_run("lowrank + elite_margin", "lowrank", "saved_fraction", 100.0),
                          per_run("dense + elite_margin", "dense", "saved_fraction", 100.0), tasks=tasks)  # fmt: skip

    def ga(encoding: str, margin: object) -> Sample:
        return run(f"{encoding}/ga" + (" + elite_margin" if margin else ""), encoding=encoding, algorithm="ga",
                   elite_margin=margin)  # fmt: skip

    random = run("random", algorithm="random")
    plain, cut = floors(random, ga("lowrank", None), ga("dense", None)), floors(random, ga("lowrank", 100.0),
                                                                                 ga("dense", 100.0))  # fmt: skip
    return Study(
        "garbus-early-stop",
        "GA dense/lowrank, elite_margin off/on, + random: HalfCheetah-v5 (every seed), Frostbite (patience 400, "
        "at most 5 seeds)",
        (
            Claim(
                "deleterious factorized mutations hurt more (harmful fraction)",
                GP,
                Comparison(
                    per_run("lowrank", "lowrank", "harmful_fraction", None),
                    per_run("dense", "dense", "harmful_fraction", None),
                ),
                plain,
            ),
            Claim("the below-elite rule cuts more of a factorized run (frames saved)", GP, saved(), cut),
            Claim(
                "the below-elite rule alone cuts more of a factorized run (HalfCheetah, no patience)",
                GP,
                saved(("HalfCheetah-v5",)),
                cut,
            ),
        ),  # fmt: skip
        suite_file="garbus-early-stop.toml",
        after=summarize_history,
        needs=(("algorithm", "random"),),
    )


def _sparse() -> Study:
    def window(density: float) -> Sample:
        return Sample(f"p={density:g}", {"density": density}, "window", "critical_step")

    def chosen(label: str, value: str) -> Sample:
        return Sample(label, {}, "ensembles", value)

    paper = "Whitaker & Whitley 2023"
    return Study(
        "whitaker-sparse",
        "adam digits parents, sparse children at p in {1, 0.1, 0.01} x 13 step norms, ensembles (94 s at 10 seeds)",
        (
            Claim(
                "at equal step norm, sparse children stay near their parent at larger steps (p=0.01 vs dense)",
                paper,
                Comparison(window(0.01), window(1.0)),
            ),
            Claim(
                "at equal step norm, the window moves with density (p=0.1 vs dense)",
                paper,
                Comparison(window(0.1), window(1.0)),
            ),
            Claim(
                "an ensemble of selected children beats its parent on test",
                paper,
                Comparison(
                    chosen("ensemble (p, sigma, k chosen on selection)", "ensemble_accuracy"),
                    chosen("parent", "parent_accuracy"),
                    higher_is_better=True,
                ),
            ),
        ),  # fmt: skip
        procedure=proc.sparse_window,
    )


def _tickets() -> Study:
    def at(method: str, rounds: int = 11) -> Sample:
        return Sample(f"{method} mask", {"method": method, "round": rounds}, "lottery")

    def moved(method: str, algorithm: str) -> Sample:
        return Sample(f"{method} ticket, {algorithm}", {"method": method, "algorithm": algorithm}, "transfer")

    paper = "Lange & Sprekeler 2023"
    floor = Sample("floor (chance 0.1; Acrobot -500)", constant={"digits": 0.1, "Acrobot-v1": -500.0})
    dense = Sample("dense SNES (round 0)", {"method": "snr", "round": 0}, "lottery")
    scale = Scale(floor, dense)
    return Study(
        "lange-tickets",
        "SNES lottery (SNR, magnitude, random), digits and Acrobot-v1; tickets to openai-es, adam",
        (
            Claim(
                "SNR masks keep accuracy where a random mask of the same init and size collapses (8.6% kept)",
                paper,
                Comparison(at("snr"), at("random"), higher_is_better=True, tasks=("digits",)),
                floors(CHANCE, at("snr"), at("random")),
            ),
            Claim(
                "magnitude masks keep accuracy where a random mask of the same init and size collapses",
                paper,
                Comparison(at("magnitude"), at("random"), higher_is_better=True, tasks=("digits",)),
                floors(CHANCE, at("magnitude"), at("random")),
            ),
            Claim(
                "SNR masks beat random masks of the same init on an RL task (round 7)",
                paper,
                Comparison(at("snr", 7), at("random", 7), higher_is_better=True, tasks=("Acrobot-v1",)),
                floors(floor, at("snr", 7), at("random", 7)),
            ),
            Claim(
                "the SNES ticket transfers to openai-es (against a random mask of the same init)",
                paper,
                Comparison(moved("snr", "openai-es"), moved("random", "openai-es"), higher_is_better=True),
                floors(floor, moved("snr", "openai-es"), moved("random", "openai-es")),
                scale,
            ),
            Claim(
                "the SNES ticket transfers to adam (against a random mask of the same init)",
                paper,
                Comparison(moved("snr", "adam"), moved("random", "adam"), higher_is_better=True),
                floors(CHANCE, moved("snr", "adam"), moved("random", "adam")),
            ),
        ),  # fmt: skip
        procedure=proc.tickets,
    )


def _rso() -> Study:
    def side(label: str, algorithm: str, policy: str, population: int) -> Sample:
        return run(label, algorithm=algorithm, policy_name=policy, population=population)

    paper, claims = "Tripathi & Singh 2020", []
    for policy in ("small_cnn", "classifier_mlp"):
        rso = side(f"rso 5 cycles, {policy}", "rso", policy, 33)
        adam5, adam320 = side(f"adam 5 steps, {policy}", "adam", policy, 5), side(f"adam 320 steps, {policy}", "adam",
                                                                                 policy, 16)  # fmt: skip
        claims += [
            Claim(f"RSO beats adam at the same weight updates ({policy})", paper, Comparison(rso, adam5),
                  floors(CHANCE, rso, adam5)),
            Claim(f"RSO beats adam at no more forward passes or wall time ({policy}; adam 320 steps: 41k image "
                  "forwards and at most a fifth of RSO's wall time, against RSO's 5.2M (cnn) or 12.2M (mlp))", paper,
                  Comparison(rso, adam320), floors(CHANCE, rso, adam320)),
            Claim(f"RSO reaches near-gradient accuracy, within 0.03 ({policy})", paper,
                  Comparison(rso, adam320, margin=0.03), floors(CHANCE, rso, adam320)),
        ]  # fmt: skip
    return Study(
        "rso-digits",
        "digits: rso 5 cycles vs adam at 5 and 320 steps, small_cnn and classifier_mlp (11 min measured at 10 seeds)",
        tuple(claims),
        suite_file="rso-digits.toml",
        needs=(("policy", "small_cnn"), ("policy", "classifier_mlp")),
    )


def _stitch() -> Study:
    def side(label: str, parent: str, value: str) -> Sample:
        return Sample(label, {"parent": parent}, "stitch_seeds", value)

    claims = tuple(
        Claim(f"stitched offspring at <= parent {p}'s multiply-adds beat it on test", "Guijt et al. 2024",
              Comparison(side(f"stitched (<= {p} macs)", p, "offspring_test"), side(f"parent {p}", p, "parent_test"),
                         higher_is_better=True))
        for p in ("A", "B")
    )  # fmt: skip
    return Study(
        "guijt-stitch",
        "two adam digits MLPs per seed (64, 24 wide), stitch GA and choice on validation, test once (32 s at 10 seeds)",
        claims,
        procedure=proc.stitch,
    )


STUDIES: dict[str, Study] = {s.name: s for s in (_rl(), _charlm(), _early_stop(), _sparse(), _tickets(), _rso(),
                                                  _stitch())}  # fmt: skip
