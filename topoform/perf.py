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


@contextlib.contextmanager
def gc_for_apply():
    """The collector for a command that plans, then executes: paused while the files load and
    the plan is made (as :func:`gc_paused`), and once execution starts (call the yielded
    function) running again over a frozen heap (``gc.freeze``): the loaded files and the plan,
    hundreds of thousands of objects that stay alive, are then never rescanned by the
    collections the executor's own short-lived objects trigger (on a 31,000-change apply each
    full collection took about 0.2 s). The heap is unfrozen and the previous state restored
    at the end, so callers in the same process (tests) see the collector as before.
    """
    enabled = gc.isenabled()
    frozen = []
    gc.disable()

    def executing() -> None:
        if not frozen:
            gc.freeze()
            frozen.append(True)
        if enabled:
            gc.enable()

    try:
        yield executing
    finally:
        if frozen:
            gc.unfreeze()
        if enabled:
            gc.enable()
