"""Rolling out a rule change: which version of the rules made each decision, and running a
candidate version beside production before it replaces it.

It owns:

- ``versions``: the label a plan is recorded with (the file's ``version``, else
  ``--version-label``, else the git commit of the file's work tree);
- ``kpis``: one batch's figures as a rollout compares them (units routed, allocations,
  packages, split orders, shipping cost, mean distance, late, unfilled and parked units) and
  the units whose decisions differ between two versions;
- ``canary``: which orders a canary routes (a stable hash of the order id) and its share;
- ``guards``: the canary's guard file (TOML) and the test of its figures against them;
- ``records``: the rollouts and their figures in the run store (tables ``rollouts`` and
  ``rollout_kpis``, migration 0008) and the reports read from them;
- ``controller``: the service side (`Rollout`): scheduled batches and API decisions routed
  also by the candidate, applying nothing (shadow), or a share of orders routed by it for real
  (canary) with the guards checked after each batch and an automatic return to production.

The run store is the truth: a rollout's state (active, tripped, aborted, promoted) lives in
``rollouts``, so every process sharing the store follows it and a restart resumes it. This
package calls the core (plans, the engines) and ``ops`` (the run store, the recorded run);
nothing below it imports it.
"""
