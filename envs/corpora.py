"""Text corpora for the character-level language-modeling tasks, their split and vocabulary.

``pydoc`` is Python's own ``pydoc_data.topics`` (about 465k characters of English in every
CPython install), so the default task needs no download. ``shakespeare`` is Karpathy's Tiny
Shakespeare (char-rnn), downloaded once into a cache folder. ``file`` is any UTF-8 text.
The split is the first ``1 - val_fraction`` of the text for training and the rest for
validation, as in nanoGPT's ``prepare.py``: contiguous, deterministic, with no overlap.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CORPORA = ("pydoc", "shakespeare", "file")
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_FILE = "tinyshakespeare.txt"
UNKNOWN = 0
"""Id of every character the training text does not contain."""


def default_cache() -> Path:
    """Where downloaded corpora live: ``$XDG_CACHE_HOME/evoboard`` or ``~/.cache/evoboard``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "evoboard"


def pydoc_text() -> str:
    """Every ``pydoc_data.topics`` entry in sorted topic order, blank-line separated."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics))


def read_text(path: str | Path) -> str:
    """A UTF-8 text file; ValueError (one line) if unreadable, not UTF-8 or too short."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"corpus_path {str(path)!r} does not exist") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"corpus_path {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ValueError(f"cannot read corpus_path {str(path)!r}: {err.strerror}") from None
    return text


def download(url: str, target: Path, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``target`` once (written to a temporary name, then renamed)."""
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
        data.decode("utf-8")
    except (urllib.error.URLError, OSError, UnicodeDecodeError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise ValueError(
            f"cannot download {url} ({reason}); put the file at {target} or pass --set corpus_path=PATH"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def load_text(corpus: str, path: str | None = None, url: str | None = None, cache: str | None = None) -> str:
    """The full text of a corpus: ``path`` wins when given; shakespeare downloads on first use."""
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; valid: {', '.join(CORPORA)}")
    if path is not None:
        return read_text(path)
    if corpus == "pydoc":
        return pydoc_text()
    if corpus == "file":
        raise ValueError("charlm/file needs a text file: --set corpus_path=PATH")
    target = Path(cache).expanduser() if cache else default_cache()
    return read_text(download(url or SHAKESPEARE_URL, target / SHAKESPEARE_FILE))


@dataclass(frozen=True)
class Vocabulary:
    """Characters of the training text, sorted, with id 0 kept for unknown characters."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        """Token ids (len(text),) as int64; characters outside the vocabulary map to UNKNOWN."""
        ids = {c: i + 1 for i, c in enumerate(self.chars)}
        return np.fromiter((ids.get(c, UNKNOWN) for c in text), dtype=np.int64, count=len(text))

    def decode(self, tokens: np.ndarray) -> str:
        """Text from ids; UNKNOWN shows as U+FFFD."""
        return "".join("\ufffd" if t == UNKNOWN else self.chars[t - 1] for t in np.asarray(tokens).tolist())


@dataclass(frozen=True)
class Split:
    """A corpus as token ids: training and validation parts and the training vocabulary."""

    train: np.ndarray  # (N_train,) int64
    val: np.ndarray  # (N_val,) int64
    vocab: Vocabulary


def split(text: str, val_fraction: float, min_chars: int) -> Split:
    """First part for training, the rest for validation; vocabulary from the training part only.

    ``min_chars`` is the least each part must hold (one window of context + 1 characters).
    """
    cut = int(round(len(text) * (1.0 - val_fraction)))
    train, val = text[:cut], text[cut:]
    if len(train) < min_chars or len(val) < min_chars:
        raise ValueError(
            f"corpus of {len(text)} characters is too short: with val_fraction={val_fraction} each part "
            f"needs at least {min_chars} (context + 1) characters"
        )
    vocab = Vocabulary.from_text(train)
    return Split(vocab.encode(train), vocab.encode(val), vocab)
