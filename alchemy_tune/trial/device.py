"""Where and how a trial computes: device, precision, determinism, and the trial's peak memory.

Kept apart from the trial loop so the loop reads as training, and so every policy here has one place:

- **precision**: bf16 autocast only on a CUDA GPU that runs bf16 natively (compute capability >= 8.0,
  Ampere on). ``torch.cuda.is_bf16_supported()`` is also true on older GPUs, where bf16 is emulated and
  slower than fp32, so it is not what decides. The heads and losses stay fp32 either way (model.py).
- **determinism**: torch's deterministic algorithms plus the cuBLAS workspace setting they need, so a
  resumed GPU trial repeats an uninterrupted one exactly (at some speed cost, see README).
- **peak memory**: per trial, also in a Ray worker process that runs several trials one after another:
  the kernel's peak-RSS mark is reset at the trial's start (``/proc/self/clear_refs``), as are torch's
  CUDA peak statistics.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import math
import os
import resource
import sys

import torch

from alchemy_tune.core.errors import UsageError

FP32, BF16 = "fp32", "bf16"
# cuBLAS needs a fixed workspace to be deterministic; ":4096:8" is the setting torch documents.
CUBLAS_WORKSPACE = ":4096:8"


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def native_bf16(device: torch.device) -> bool:
    """True on CUDA GPUs with bf16 tensor cores (compute capability 8.0 or later)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def choose_precision(device: torch.device, want_bf16: bool) -> str:
    """``bf16`` when asked for and native on ``device``, else ``fp32`` (CPU, pre-Ampere GPUs)."""
    return BF16 if want_bf16 and native_bf16(device) else FP32


def autocast(device: torch.device, precision: str):
    if precision == BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_determinism(enabled: bool) -> None:
    """Turn torch's deterministic algorithms on or off for this process (a reused worker resets it too).

    The cuBLAS variable is read when a cuBLAS handle is created, so it is set before the trial's first
    CUDA matrix product; in a worker that already ran a non-deterministic CUDA trial it may come too late
    for the handles that exist (torch then raises on the first non-deterministic call, it never passes
    silently).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = enabled


def release_free_memory() -> None:
    """Hand memory that Python and torch freed back to the OS (glibc keeps it otherwise).

    A CPU trial frees hundreds of MB of loading scratch and activations of every batch shape; glibc's heap
    holds on to them, so RSS only ever grows across phases and across trials in a reused worker.
    """
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if libc_name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc_name).malloc_trim(0)


class PeakMemory:
    """Peak host RSS and peak GPU memory (MB) of this process since :meth:`reset`."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as handle:  # "5": reset the peak-RSS mark (Linux)
                handle.write("5")
            self._since_reset = True
        except OSError:
            self._since_reset = False  # then the process-lifetime peak is what can be reported
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def rss_mb(self) -> float:
        if self._since_reset:
            with contextlib.suppress(OSError, ValueError, StopIteration):
                with open("/proc/self/status") as handle:
                    line = next(x for x in handle if x.startswith("VmHWM:"))
                return int(line.split()[1]) / 1024
        scale = 1 if sys.platform.startswith("linux") else 1024  # ru_maxrss: kB on Linux, bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / scale

    def gpu_mb(self) -> float:
        """What torch's caching allocator reserved at most: the memory other trials on the GPU could not use."""
        if self.device.type != "cuda":
            return math.nan
        return torch.cuda.max_memory_reserved(self.device) / 2**20
