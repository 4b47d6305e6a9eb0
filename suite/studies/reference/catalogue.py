"""The seven reference studies (#16) and the claims each tests; times are for --seeds 5 on 2 cores."""

from __future__ import annotations

from evoboard.suite.studies.claims import Claim, Comparison, Sample
from evoboard.suite.studies.reference import Study
from evoboard.suite.studies.reference import procedures as proc
from evoboard.suite.studies.reference.summary import summarize_history

GP = "Garbus & Pollack 2025"


def run(label: str, **where) -> Sample:
    """The leaderboard runs of one variant."""
    return Sample(label, where)


def _rl() -> Study:
    ga = {"algorithm": "ga"}
    lowrank, floor = run("lowrank/ga", encoding="lowrank", **ga), run("random", algorithm="random")
    beats_floor = (Comparison(lowrank, floor),)
    return Study(
        "garbus-rl",
        "GA over 5 encodings + random search on HalfCheetah-v5 and Walker2d-v5, P=32, 10 generations (24 min measured)",
        (
            Claim(
                "factorized matches or beats dense (RL)",
                GP,
                Comparison(lowrank, run("dense/ga", encoding="dense", **ga)),
                beats_floor,
            ),
            Claim(
                "factorized beats the similar and smaller dense network",
                GP,
                Comparison(lowrank, run("small_dense/ga", encoding="small_dense", **ga)),
                beats_floor,
            ),
        ),  # fmt: skip
        suite_file="garbus-rl.toml",
        needs=(("algorithm", "random"), ("encoding", "small_dense")),
    )


def _charlm() -> Study:
    es = {"algorithm": "openai-es"}
    lowrank = run("lowrank/openai-es", encoding="lowrank", **es)
    unigram = run("unigram", algorithm="unigram")
    return Study(
        "garbus-charlm",
        "charlm/pydoc: openai-es and GA x 4 encodings (with small_dense); unigram, bigram, adam (17 min measured)",
        (
            Claim(
                "factorized does notably well on language modeling",
                GP,
                Comparison(lowrank, run("dense/openai-es", encoding="dense", **es)),
                (Comparison(lowrank, unigram),),
            ),
            Claim(
                "factorized beats the similar and smaller dense network (LM)",
                GP,
                Comparison(lowrank, run("small_dense/openai-es", encoding="small_dense", **es)),
            ),
            Claim(
                "factorized does well under the GA too (LM)",
                GP,
                Comparison(
                    run("lowrank/ga", encoding="lowrank", algorithm="ga"),
                    run("dense/ga", encoding="dense", algorithm="ga"),
                ),
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

    floor = (Comparison(run("dense/ga", encoding="dense", algorithm="ga", elite_margin=None),
                        run("random", algorithm="random")),)  # fmt: skip
    return Study(
        "garbus-early-stop",
        "GA dense/lowrank, elite_margin off/on, + random: HalfCheetah-v5, Frostbite (patience 400) (51 min measured)",
        (
            Claim(
                "deleterious factorized mutations hurt more (harmful fraction)",
                GP,
                Comparison(
                    per_run("lowrank", "lowrank", "harmful_fraction", None),
                    per_run("dense", "dense", "harmful_fraction", None),
                ),
                floor,
            ),
            Claim("the below-elite rule cuts more of a factorized run (frames saved)", GP, saved(), floor),
            Claim(
                "the below-elite rule alone cuts more of a factorized run (HalfCheetah, no patience)",
                GP,
                saved(("HalfCheetah-v5",)),
                floor,
            ),
        ),  # fmt: skip
        suite_file="garbus-early-stop.toml",
        after=summarize_history,
        needs=(("algorithm", "random"),),
    )


def _sparse() -> Study:
    def window(density: float) -> Sample:
        return Sample(f"p={density:g}", {"density": density}, "window", "critical_sigma")

    def chosen(label: str, value: str) -> Sample:
        return Sample(label, {}, "ensembles", value)

    return Study(
        "whitaker-sparse",
        "5 adam digits parents, sparse children at p in {1, 0.1, 0.01} x 11 sigmas: window, ensembles (<1 min)",
        (
            Claim(
                "sparse children tolerate a larger step (p=0.01 vs dense)",
                "Whitaker & Whitley 2023",
                Comparison(window(0.01), window(1.0)),
            ),
            Claim(
                "the window moves with density (p=0.1 vs dense)",
                "Whitaker & Whitley 2023",
                Comparison(window(0.1), window(1.0)),
            ),
            Claim(
                "an ensemble of selected children beats its parent on test",
                "Whitaker & Whitley 2023",
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
        return Sample(method, {"method": method, "round": rounds}, "lottery")

    def moved(method: str, algorithm: str) -> Sample:
        return Sample(f"{method} ticket, {algorithm}", {"method": method, "algorithm": algorithm}, "transfer")

    paper = "Lange & Sprekeler 2023"
    return Study(
        "lange-tickets",
        "SNES lottery (SNR, magnitude, random), digits and Acrobot-v1; tickets to openai-es, adam (18 min measured)",
        (
            Claim(
                "SNR tickets keep accuracy where random re-init collapses",
                paper,
                Comparison(at("snr"), at("random"), higher_is_better=True, tasks=("digits",)),
            ),
            Claim(
                "magnitude tickets keep accuracy where random re-init collapses",
                paper,
                Comparison(at("magnitude"), at("random"), higher_is_better=True, tasks=("digits",)),
            ),
            Claim(
                "SNR tickets beat random masks on an RL task (round 7)",
                paper,
                Comparison(at("snr", 7), at("random", 7), higher_is_better=True, tasks=("Acrobot-v1",)),
            ),
            Claim(
                "the SNES ticket transfers to openai-es",
                paper,
                Comparison(moved("snr", "openai-es"), moved("random", "openai-es"), higher_is_better=True),
            ),
            Claim(
                "the SNES ticket transfers to adam",
                paper,
                Comparison(moved("snr", "adam"), moved("random", "adam"), higher_is_better=True),
            ),
        ),  # fmt: skip
        procedure=proc.tickets,
    )


def _rso() -> Study:
    def side(label: str, algorithm: str, policy: str, population: int) -> Sample:
        return run(label, algorithm=algorithm, policy_name=policy, population=population)

    claims = []
    for policy in ("small_cnn", "classifier_mlp"):
        rso = side(f"rso 5 cycles, {policy}", "rso", policy, 33)
        claims += [
            Claim(f"RSO beats adam at the same weight updates ({policy})", "Tripathi & Singh 2020",
                  Comparison(rso, side(f"adam 5 steps, {policy}", "adam", policy, 5))),
            Claim(f"RSO reaches near-gradient accuracy, within 0.03 ({policy})", "Tripathi & Singh 2020",
                  Comparison(rso, side(f"adam 320 steps, {policy}", "adam", policy, 16), margin=0.03)),
        ]  # fmt: skip
    return Study(
        "rso-digits",
        "digits: rso 5 cycles vs adam at 5 and 320 steps, small_cnn and classifier_mlp (2 min measured)",
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
        "5 seeds of two adam digits MLPs (64 and 24 wide), stitch GA on validation, scored on test (<1 min measured)",
        claims,
        procedure=proc.stitch,
    )


STUDIES: dict[str, Study] = {s.name: s for s in (_rl(), _charlm(), _early_stop(), _sparse(), _tickets(), _rso(),
                                                  _stitch())}  # fmt: skip
