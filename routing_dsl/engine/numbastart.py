"""numba started without its BLAS probe: about 0.13 s of every process that routes on the
fast engine or reads a snapshot's stock.

When numba first compiles or loads a function from its cache, it imports its array maths
(`numba.np.arraymath`), which probes for a BLAS by importing `scipy.linalg` (0.13 s on a
quiet machine, 0.18 s loaded: the largest part of numba's start-up after its own import).
The probe's answer only chooses how `np.correlate` and `np.convolve` multiply, which no
compiled function here calls. So the modules that use numba import this one first, and it
imports the array maths while `scipy.linalg` is refused: the probe answers "no BLAS" at
once. Nothing else changes: a BLAS routine numba types later (`np.dot`) imports
`scipy.linalg` itself, as it always does. A process that imported the array maths already
(another library started numba first) is left as it is.
"""

from __future__ import annotations

import sys

_PROBED = "scipy.linalg"  # the probe imports scipy.linalg.cython_blas: its package is the cost


class _RefuseProbe:
    """A finder that refuses the probe's module, and nothing else."""

    def find_spec(self, name, path=None, target=None):
        if name == _PROBED:
            raise ImportError(f"{_PROBED} is not imported for numba's BLAS probe "
                              "(routing_dsl.engine.numbastart)")
        return None


def start() -> None:
    if "numba.np.arraymath" in sys.modules or _PROBED in sys.modules:
        return
    finder = _RefuseProbe()
    sys.meta_path.insert(0, finder)
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        sys.meta_path.remove(finder)


start()
