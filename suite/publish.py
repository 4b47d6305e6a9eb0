"""Where figures land: the machine line, Markdown tables, and ``<out>/<name>.csv``, ``.md``, ``.png``.

Every benchmark, study and report writes through here, with one matplotlib epilogue.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu", threads: int | Iterable[int] | None = None) -> str:
    """One line naming where figures were measured: CPU, cores, torch threads, torch version, device.

    ``threads``: the torch thread counts the table covers (default: the current setting)."""
    counts = [torch.get_num_threads()] if threads is None else [threads] if isinstance(threads, int) else threads
    counts = sorted({int(n) for n in counts})
    plural = "" if counts == [1] else "s"
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return (
        f"{cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, "
        f"{','.join(map(str, counts))} torch thread{plural}, torch {torch.__version__}, {device}"
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table from a header and rows of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files only (no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Figure, path: Path, dpi: int = 120, **savefig: Any) -> Path:
    """The one matplotlib epilogue: tight layout, save to ``path``, close the figure."""
    figure.tight_layout()
    figure.savefig(path, dpi=dpi, **savefig)
    pyplot().close(figure)
    return path


def publish(
    out: str | Path,
    name: str,
    table: pd.DataFrame | None = None,
    markdown: str | None = None,
    figure: Figure | None = None,
    echo: bool = True,
) -> list[Path]:
    """Write ``<out>/<name>.csv`` (the table), ``.md`` (the Markdown, printed when ``echo``) and ``.png``
    (the figure, through ``save_figure``), making ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if table is not None:
        table.to_csv(out / f"{name}.csv", index=False)
        written.append(out / f"{name}.csv")
    if markdown is not None:
        (out / f"{name}.md").write_text(markdown)
        written.append(out / f"{name}.md")
        if echo:
            print(markdown, end="")
    if figure is not None:
        written.append(save_figure(figure, out / f"{name}.png"))
    return written
