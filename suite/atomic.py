"""Write a file so that readers only ever see the old or the new version, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from evoboard.errors import WriteFailed


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` (disk full, read-only, folder gone) into WriteFailed."""
    try:
        yield
    except WriteFailed:
        raise
    except OSError as err:
        raise WriteFailed(path, err.strerror or str(err)) from None


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[IO[str]], object]) -> None:
    """Call ``write`` on a temp file beside ``path``, flush it to disk, then rename it over ``path``.

    A crash (even kill -9) at any moment leaves either the previous file or the new one; so
    does a failed write, which raises WriteFailed after removing its temp file.
    """
    with writing(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a result file is as readable as any other
            with os.fdopen(fd, "w", newline="") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
