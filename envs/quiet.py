"""Keep MuJoCo's per-instance noise out of the user's way.

mujoco 4.0.0 warns that HalfCheetah's ``settotalmass`` attribute is deprecated for every
instance it compiles, and writes MUJOCO_LOG.TXT into the working directory. A user warning
handler receives the message instead; each distinct message is logged once at debug level.
"""

from __future__ import annotations

import logging

log = logging.getLogger("evoboard.envs.mujoco")
_seen: set[str] = set()


def _handle(message: str) -> None:
    if message not in _seen:
        _seen.add(message)
        log.debug("mujoco: %s", message)


def quiet_mujoco() -> None:
    """Route MuJoCo warnings to logging (no stderr line, no log file); no-op without mujoco."""
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(_handle)
