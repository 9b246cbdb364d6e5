"""The fast engine: columnar snapshot loading and a compiled allocation core.

It owns what makes a large run fast and small: inventory read straight into arrays with
integer ids (`columnar`), and the per-unit, per-rule allocation loop compiled with numba
(`kernel`), driven by `fast`, which reuses the reference interpreter for everything that is
not hot (eligibility, order filters and sorts, result assembly). The reference interpreter
stays the statement of the semantics: the differential tests hold the two to byte-identical
results.
"""

from .fast import FastUnsupported, run_fast, unsupported_reason

__all__ = ["FastUnsupported", "run_fast", "unsupported_reason"]
