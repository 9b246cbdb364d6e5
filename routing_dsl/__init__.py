"""routing-dsl: order-routing rules as code.

Pipeline, one module per stage: ``source`` (spans) -> ``parser`` (text to ``nodes``, the AST)
-> ``checker`` (names, types, structure; to ``checked``) -> ``compiler`` (to ``plan``) ->
``interpreter`` (plan + ``snapshot`` to a result). ``diagnostics`` carries problems between
stages; ``cli`` and ``lsp`` are the front doors.
"""

__version__ = "0.1.0"
