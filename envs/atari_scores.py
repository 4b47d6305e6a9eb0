"""Reference random and human scores of the 57 Atari games, and the protocol they are read under.

A human-normalized score (score - random) / (human - random) is 0 for a uniform-random
policy and 1 for the professional human tester, so games with very different point
scales can be averaged (Mnih et al. 2015, "Human-level control through deep RL").
Values: the standard 57-game table as listed in Badia et al. 2020 ("Agent57", appendix),
whose random and human entries come from Mnih et al. 2015 and Wang et al. 2016
("Dueling network architectures") and are the ones Rainbow (Hessel et al. 2018) uses.
Video Pinball's random score is 0.0 in that table; Mnih et al. 2015 list 16256.9.
Keys are ale-py ROM ids (``battle_zone``); a game without an entry reports its raw return.

The protocol (the one place evoboard states it; ``normalization_blocker`` enforces it).
The literature compares normalized scores of whole games: game over ends the episode (no
life-loss ends), rewards in game points (not clipped), at most 108,000 emulator frames (30
minutes of play; 27,000 steps at frameskip 4, as Rainbow and Dopamine evaluate), and one of
two ways to make the emulator stochastic:
- ``machado``: sticky actions with probability 0.25 (Machado et al. 2018, "Revisiting the
  Arcade Learning Environment"); **evoboard's defaults follow this one**, with the game's
  minimal action set (Machado et al. recommend all 18; ``full_action_space=true``) and up
  to 30 no-op frames at reset kept from the DQN setup;
- ``dqn-noop``: no sticky actions, up to 30 no-op frames at reset (Mnih et al. 2015).
A run whose settings leave both (a frame budget that truncates games, clipped rewards,
life-loss ends, other sticky probabilities, ``patience`` cutting held-out episodes) reports
``score_kind=return``: the mean raw return, never a normalized figure. The kind is decided
from the settings before the run starts, so every row of one variant has the same kind.
Where evoboard differs: the 108k-frame cap is the ALE's own (a game cut there counts as
played to the end, as in those papers), and the final elite plays its held-out episodes
without ``elite_margin`` (``Task.final_score`` passes no elite trace), so that rule does
not disqualify a run.
"""

from __future__ import annotations

from typing import Protocol


class EpisodeProtocol(Protocol):
    """The settings that decide whether episodes follow a protocol (``evoboard.envs.atari.AtariOptions`` has them)."""

    sticky_actions: float
    noop_max: int
    frameskip: int
    reward_clipping: bool
    episodic_life: bool
    patience: int | None

    @property
    def step_budget(self) -> int: ...


PROTOCOL_FRAMES = 108_000
"""Emulator frames per episode at most under the protocol (30 minutes at 60 Hz)."""
PROTOCOLS: dict[str, str] = {
    "machado": "sticky actions 0.25 (Machado et al. 2018)",
    "dqn-noop": "sticky actions 0, up to 30 no-op frames at reset (Mnih et al. 2015)",
}
"""The evaluation protocols the reference scores are compared under (see the module docstring)."""

# rom id: (random, human)
REFERENCE_SCORES: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    "video_pinball": (0.0, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}


def human_normalized(rom: str, score: float) -> float:
    """(score - random) / (human - random) for ``rom``; KeyError if it has no reference scores."""
    random, human = REFERENCE_SCORES[rom]
    return (score - random) / (human - random)


def protocol_of(options: EpisodeProtocol) -> str | None:
    """Which of ``PROTOCOLS`` the stochasticity settings follow; None if neither."""
    if options.sticky_actions == 0.25:
        return "machado"
    if options.sticky_actions == 0.0 and options.noop_max == 30:
        return "dqn-noop"
    return None


def normalization_blocker(options: EpisodeProtocol) -> str | None:
    """Why episodes played under ``options`` cannot be normalized against the reference
    scores, in a phrase for the user; None when they follow a protocol of ``PROTOCOLS``."""
    frames = options.step_budget * options.frameskip
    if frames != PROTOCOL_FRAMES:
        return f"episodes are capped at {frames:,} frames, not the protocol's {PROTOCOL_FRAMES:,}"
    if options.reward_clipping:
        return "rewards are clipped"
    if options.episodic_life:
        return "episodes end at the first life lost"
    if options.patience is not None:
        return "patience cuts held-out episodes"
    if protocol_of(options) is None:
        return f"sticky_actions={options.sticky_actions}, noop_max={options.noop_max} follow neither protocol"
    return None
