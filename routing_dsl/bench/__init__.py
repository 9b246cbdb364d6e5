"""Measurement: what `routing bench` and `routing gen-snapshot` run, kept apart from the
product so that nothing that routes depends on it.

``suite`` measures each figure (both engines against the SQL baseline, editor latency, hostile
inputs, explanations, SQL sources, scenarios end to end, scaling, the service, scale-out), as
ratios against baselines measured in the same run; ``console`` times the console's pages
against a run store filled to a busy year; ``scenarios`` generates seeded, realistic
snapshots and the plans they are routed with; ``sqlbaseline`` routes the way HotWax does, in
SQL, as the baseline; ``loadgen`` drives a live `routing serve` over loopback; ``rollout``
measures what a shadow candidate adds to a batch and to a committed decision.
"""
