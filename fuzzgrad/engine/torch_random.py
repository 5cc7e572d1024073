"""torch's global random state, managed by Hypothesis around each example it runs.

hypothesis-torch's plugin registers it where plugins run; fuzzgrad runs without plugins by
default (`fuzzgrad.nightly.plugins`), so it registers the same itself: a Function that draws
from torch's global generator (dropout, a random projection) then replays the same way when
Hypothesis replays and shrinks its failure.
"""

from __future__ import annotations


def seed_torch(seed: int) -> None:
    """Seed torch's global generators as ``torch.manual_seed`` does, minus its fixed cost.

    Hypothesis reseeds every registered random source per example, and ``torch.manual_seed``
    queues a lazy CUDA seeding with a formatted stack trace even where no GPU exists: about a
    millisecond, a third of a small example. Here the CPU generator is seeded directly, and
    CUDA's only where CUDA exists.
    """
    import torch

    torch.default_generator.manual_seed(int(seed) % (2**63))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed) % (2**63))


class _TorchRandom:
    """torch's global random state as Hypothesis's ``register_random`` takes a random source."""

    def seed(self, seed) -> None:
        seed_torch(seed)

    def getstate(self):
        import torch

        return torch.random.get_rng_state()

    def setstate(self, state) -> None:
        import torch

        torch.random.set_rng_state(state)


#: Kept alive here: Hypothesis holds registered random sources by weak reference.
_TORCH_RANDOM = _TorchRandom()


def manage_torch_random() -> None:
    """Let Hypothesis seed torch's global random state for each example it runs and restore it
    after. Where hypothesis-torch's plugin ran (and registered its own wrapper) that one is
    used, made as cheap to seed as ours; otherwise ours is registered (registering twice is
    harmless). hypothesis_torch itself is never imported here: it imports transformers."""
    import sys

    import hypothesis

    shim = sys.modules.get("hypothesis_torch.register_random_torch_state")
    wrapper = getattr(shim, "TORCH_RANDOM_WRAPPER", None)
    if wrapper is not None:
        wrapper.seed = seed_torch
        return
    hypothesis.register_random(_TORCH_RANDOM)


__all__ = ["manage_torch_random", "seed_torch"]
