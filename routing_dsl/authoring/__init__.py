"""Authoring tools: what a rule change or a changed world does before it ships.

`whatif` applies hypothetical changes to a snapshot (close a facility, set stock, change a
daily limit) without editing files; `diff` runs two versions of the rules on the same snapshot
and reports every unit whose routing changed, with summary figures before and after, like
`terraform plan`. They call the core (checker, compiler, engines) and never the reverse.
"""
