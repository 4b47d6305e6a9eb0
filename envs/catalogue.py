"""The built-in task ids with their standard budgets; ``envs`` loads this on import."""

from __future__ import annotations

from evoboard.envs.atari import task_ids
from evoboard.envs.atari_scores import REFERENCE_SCORES
from evoboard.envs.registry import register

# Standard budgets: one episode per member, the env's own step limit.
register("CartPole-v1", max_steps=500, note="classic control, Discrete(2), max return 500")
register("Acrobot-v1", max_steps=500, note="classic control, Discrete(3)")
register("MountainCarContinuous-v0", max_steps=999, note="classic control, Box(1)")
register("Pendulum-v1", max_steps=200, note="classic control, Box(1)")
register("HalfCheetah-v5", max_steps=1000, note="MuJoCo, Box(6)")
register("Hopper-v5", max_steps=1000, note="MuJoCo, Box(3)")
register("Walker2d-v5", max_steps=1000, note="MuJoCo, Box(6)")
register("Ant-v5", max_steps=1000, note="MuJoCo, Box(8)")
register("Humanoid-v5", max_steps=1000, note="MuJoCo, Box(17)")
register("Swimmer-v5", max_steps=1000, note="MuJoCo, Box(2)")
register("InvertedPendulum-v5", max_steps=1000, note="MuJoCo, Box(1)")
CHARLM = "evoboard.envs.charlm:CharLMTask"
register("charlm/pydoc", CHARLM, "char LM, pydoc_data.topics (built in), bits/char", corpus="pydoc")
register("charlm/shakespeare", CHARLM, "char LM, Tiny Shakespeare (cached)", corpus="shakespeare")
register("charlm/file", CHARLM, "char LM, any UTF-8 file: --set corpus_path=PATH", corpus="file")
register("digits", "evoboard.envs.digits:DigitsTask", "supervised, scikit-learn 8x8 digits (bundled), test accuracy")


def register_atari() -> None:
    """Register ``ALE/<Game>-v5`` for every shipped single-player ROM (ale-py is imported only on make)."""
    for task_id, rom in task_ids().items():
        kind = "human-normalized" if rom in REFERENCE_SCORES else "raw return (no reference scores)"
        register(task_id, "evoboard.envs.atari:AtariTask", note=f"Atari 2600 from pixels, {kind}")


register_atari()
