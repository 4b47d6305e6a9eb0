"""Atari suites: the Atari-5 subset, Garbus & Pollack's four games, and a one-minute smoke run.

Atari-5 (Aitchison et al. 2023, "Atari-5: Distilling the Arcade Learning Environment down
to five games") predicts the 57-game median human-normalized score from five games.
Garbus & Pollack 2025 evolved Nature CNNs with factorized mutations on Asteroids,
Frostbite, Gravitar and Kangaroo. Every spec uses the task's Machado et al. 2018 settings
and the Nature CNN; the full suites keep the standard 108k-frame episodes.
"""

from __future__ import annotations

from suite.spec import RunSpec
from suite.suites.registry import register_suite

ATARI5 = ("BattleZone", "DoubleDunk", "NameThisGame", "Phoenix", "Qbert")
GARBUS4 = ("Asteroids", "Frostbite", "Gravitar", "Kangaroo")

register_suite(
    "atari5",
    "dense GA, Nature CNN, on the Atari-5 games (Aitchison et al. 2023), 108k-frame episodes",
    [RunSpec(f"ALE/{game}-v5", population=32, generations=10) for game in ATARI5],
)
register_suite(
    "garbus4",
    "dense GA, Nature CNN, on Asteroids, Frostbite, Gravitar, Kangaroo (Garbus & Pollack 2025)",
    [RunSpec(f"ALE/{game}-v5", population=32, generations=10) for game in GARBUS4],
)
register_suite(
    "atari-smoke",
    "about a minute of tiny GA runs on Pong and Breakout at 2,000 frames an episode (checks the Atari install)",
    [
        RunSpec(
            f"ALE/{game}-v5",
            population=4,
            generations=2,
            settings={"max_frames": 2000, "elite_candidates": 2, "elite_episodes": 1, "eval_episodes": 2},
        )
        for game in ("Pong", "Breakout")
    ],
)
