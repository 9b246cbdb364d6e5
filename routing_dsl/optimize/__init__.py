"""Batch optimisation: a routing's rules as constraints, HiGHS as the solver, and what the
rules cost against the optimum (issue 24; docs/semantics.md, section 18).

It owns the `optimize` block's settings (`settings`, light: the checker, the formatter, the
language server and the docs read it without loading numpy), which facilities a routing's
rules admit for each unit (`candidates`, the one adapter onto the engine's own condition
checks), the model in sparse arrays and its solution (`model`, `solve`), windows of whole
orders solved in parallel (`windows`), the result's `optimization` section (`report`) and
what the interpreter calls when a routing with `optimize` runs (`run`).

The rules' own decisions are always the warm start and the fallback: the optimum is what a
deterministic amount of solver work finds from them, never less.
"""
