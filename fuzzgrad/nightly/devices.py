"""Which GPUs a worker may use: ``--devices`` for local workers, ``--gpus-per-task`` for both
executors, and which targets need a GPU at all.

A local worker is pinned to its GPUs the way Ray pins a task: through ``CUDA_VISIBLE_DEVICES``,
set in the worker before anything initialises CUDA (the fork server never does), so the worker
sees its devices as ``cuda:0``, ``cuda:1``...
"""

from __future__ import annotations

import math
import os


def parse_fraction(text: str, option: str) -> float:
    """A positive number of CPUs or GPUs per task: a fraction of one (``0.5``: two tasks share
    it), or a whole number; a ValueError says what is wrong."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0 and (value <= 1 or value.is_integer())):
        raise ValueError(
            f"{option} takes a fraction in (0, 1] (0.5: two tasks share one) or a whole number, "
            f"not {text!r}"
        )
    return value


def visible_gpus(count: int | None = None) -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them: its own list when
    it is set (CUDA stops at the first ``-1``), else ``0 .. count-1`` where ``count`` is the
    number of devices torch finds (through NVML, so CUDA is not initialised: forking stays
    safe)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        out = []
        for part in given.split(","):
            part = part.strip()
            if not part or part == "-1":
                break
            out.append(part)
        return out
    if count is None:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [str(i) for i in range(count)]


def device_slots(gpus: list[str], per_task: float = 1.0) -> list[str]:
    """One ``CUDA_VISIBLE_DEVICES`` value per local worker: each GPU ``1 / per_task`` times for a
    fraction (``0.5``: two workers share each GPU), or groups of ``per_task`` GPUs (GPUs left
    over, fewer than a group, are not used)."""
    if per_task <= 1:
        share = max(1, int(1 / per_task + 1e-9))
        return [gpu for gpu in gpus for _ in range(share)]
    size = int(per_task)
    return [",".join(gpus[i : i + size]) for i in range(0, len(gpus) - size + 1, size)]


def wants_gpu(target) -> bool:
    """Whether ``target``'s cases may be drawn on a GPU (where one exists): it is not
    registered CPU-only (``devices=["cpu"]``)."""
    devices = getattr(target, "options", {}).get("devices")
    return devices is None or "cuda" in devices
