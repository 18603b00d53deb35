"""A trial that runs out of GPU memory fails with a message that says why and what to change.

Ray's fractional GPUs (`--gpus-per-trial 0.25`) are a scheduling promise only: Ray sets
CUDA_VISIBLE_DEVICES so that the trials packed on one GPU see it, and nothing limits how much
of its memory each takes. When packed trials together need more than the GPU has, one of
them raises torch's OutOfMemoryError. This turns it into an error that names the share and
the remedies; Tune then retries the trial from its last checkpoint (`--max-failures`).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

GIB = 2**30


class GpuOutOfMemory(RuntimeError):
    """A trial ran out of GPU memory (the message says how much it held and how to avoid it)."""


def _assigned_gpu_share() -> float | None:
    """This trial's GPU share, or None outside a Ray worker (asking there would start a Ray, or
    fail in a driver)."""
    import ray

    context = ray.get_runtime_context() if ray.is_initialized() else None
    if context is None or context.worker.mode != ray.WORKER_MODE:
        return None
    return context.get_assigned_resources().get("GPU")


def describe_out_of_memory(share: float | None = None) -> str:
    """One line: the GPU's memory, this trial's part of it, its GPU share, and the remedies."""
    parts = ["out of GPU memory"]
    if torch.cuda.is_available():
        device = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(device)
        held = torch.cuda.memory_reserved(device)
        parts.append(
            f"on GPU {device} (CUDA_VISIBLE_DEVICES index): this trial held {held / GIB:.1f} GiB of "
            f"{total / GIB:.1f} GiB, {free / GIB:.1f} GiB free"
        )
    if share is not None and 0 < share < 1:
        parts.append(
            f"--gpus-per-trial {share:g} lets {int(1 / share + 1e-9)} trials share one GPU and Ray does not "
            "divide its memory: raise --gpus-per-trial or lower --concurrency"
        )
    else:
        parts.append("use a smaller batch or a larger GPU")
    parts.append("Tune retries the trial from its last checkpoint (--max-failures)")
    return "; ".join(parts)


# What cuDNN and cuBLAS say when their own workspace allocation fails: torch raises these as a
# plain RuntimeError, not as OutOfMemoryError.
LIBRARY_ALLOC_FAILURES = ("CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception means the GPU ran out of memory (torch's own error or a CUDA library's)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in LIBRARY_ALLOC_FAILURES)


@contextlib.contextmanager
def out_of_memory_explained() -> Iterator[None]:
    """Re-raise an out-of-GPU-memory error as GpuOutOfMemory with `describe_out_of_memory`'s message."""
    try:
        yield
    except RuntimeError as exc:
        if isinstance(exc, GpuOutOfMemory) or not is_out_of_memory(exc):
            raise
        message = describe_out_of_memory(_assigned_gpu_share())
        release_device_memory()  # the retry may land on this GPU again
        raise GpuOutOfMemory(message) from exc


def release_device_memory() -> None:
    """Collect dropped objects (a search's method refers back to it, a cycle) and hand cached GPU
    blocks back, so that trials packed on one GPU do not see memory that nothing uses as taken."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
