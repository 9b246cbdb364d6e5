"""routing-dsl: order-routing rules as code.

Pipeline, one module per stage: ``source`` (spans) -> ``parser`` (text to ``nodes``, the AST)
-> ``checker`` (names, types, structure; to ``checked``) -> ``compiler`` (to ``plan``) ->
``interpreter`` (plan + ``snapshot`` to a result). ``diagnostics`` carries problems between
stages. ``app`` is the application layer the front doors call (``cli``, ``service``: load
a plan, open a snapshot, run, record, with typed errors); ``lsp`` is the editors' door;
``bench`` holds the measurement code.
"""

__version__ = "0.1.0"
