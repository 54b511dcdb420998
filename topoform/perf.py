"""Performance helpers shared by loading, planning and routing. A leaf: imports nothing from topoform."""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector for the duration of the block (nesting is safe).

    Loading, indexing and planning allocate hundreds of thousands of small acyclic
    objects that all stay alive, and each automatic collection rescans the growing heap
    for nothing: on a 10,000-queue file a bare ``yaml.load`` spends about two thirds of
    its time in such collections (benchmarks/bench_load.py), the routing index build is
    2.5x slower with it on (bench_routing.py), and plan time grows faster than the
    topology (bench_plan.py). Reference counting still frees everything as usual; the
    previous collector state is restored afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
