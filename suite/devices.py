"""What a run's device is, and how to time it honestly: the clock after a CUDA sync, TF32 off, the GPU by name.

CUDA kernels run asynchronously: ``time.perf_counter()`` right after a decode measures the
launches, and the decode's work lands in whichever phase next waits for the GPU (the first
``.cpu()`` of an evaluation). ``clock(device)`` waits for the device's queued work first.

TF32 (NVIDIA Ampere and later) rounds float32 matmul and convolution inputs to a 10-bit
mantissa, about 1e-3 relative: faster, and a different network output from the CPU's. PyTorch
leaves it off for matmuls and on for cuDNN convolutions by default; evoboard sets both from one
setting (``--set tf32=true``, default off), recorded in every run's config.
"""

from __future__ import annotations

import time

import torch


def clock(device: torch.device | str) -> float:
    """``time.perf_counter()`` once ``device`` has finished its queued work (a no-op wait on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions, both on or both off (process-wide)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def tf32_state() -> dict[str, bool]:
    """The two TF32 switches as torch has them now."""
    return {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)}


def device_name(device: torch.device | str) -> str:
    """What a leaderboard row says ran it: ``cpu``, or ``cuda:`` and the GPU model (``cuda:NVIDIA H100 80GB HBM3``).

    Results on CUDA can differ between GPU models (kernel choice, and ``randn``'s launch grid
    depends on the SM count), so the model is part of where a number comes from.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    return f"cuda:{torch.cuda.get_device_name(device)}"


def reset_peak_memory(device: torch.device | str) -> None:
    """Start counting peak memory afresh (CUDA only; the CPU has no allocator counter)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device | str) -> float | None:
    """Peak memory torch allocated on a CUDA device since the last reset, in MiB; None elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
