"""Hostile inputs for every surface that reads data, generated from the surface's schema.

Each surface declares what it accepts once (lsprotocol's types for the language server, the
`.routetest` schema, the what-if grammar, the HotWax export schema, the JSON Schemas of
snapshots, plans and results, the service's OpenAPI document); this package derives
generators from those declarations, breaks the generated inputs at one place each, and
checks that the surface answers with a result or a clear refusal: never a crash, a hang or
an unanswered request.

- :mod:`.values`: valid values of annotated types and of JSON Schemas, and one-place mutations
  of their JSON shape;
- :mod:`.lsp`: LSP requests sent to a real server over stdio;
- :mod:`.surfaces`: `.routetest` files, what-if statements, HotWax group exports;
- :mod:`.contracts`: plans run as `routing run PLAN` runs them, results read by every reader;
- :mod:`.http`: requests to the service and its console, from its OpenAPI document;
- :mod:`.snapshots`: snapshots generated from the snapshot JSON Schema, read by both loaders
  and routed by both engines, which must agree byte for byte.

:func:`counts` runs a seeded campaign on every surface and returns what it did, per surface
(for `routing bench`). The test suite runs the same campaigns (short in `make test`, long
under `pytest -m fuzz`), and each finding became a named regression test.
"""

from __future__ import annotations

from pathlib import Path


def starter_project(folder: Path) -> Path:
    """The starter project (`routing init`: rules, catalog, snapshot) written in ``folder``,
    the material every campaign starts from."""
    from ..starter import files
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


SURFACES = ("lsp", ".routetest", "what-if", "hotwax", "snapshots", "plan", "result", "http")


def counts(seed: int = 0, per_surface: int = 300) -> dict[str, dict[str, int]]:
    """A seeded campaign of ``per_surface`` inputs on every surface: per surface, the inputs
    sent, how many were accepted and refused, and the findings (0 when all is well). The
    language server runs as a real process; the rest in this one."""
    import asyncio
    import tempfile

    from . import contracts, http, lsp, snapshots, surfaces
    with tempfile.TemporaryDirectory(prefix="routing-fuzz-") as folder:
        project = surfaces.Project(Path(folder) / "project")
        service = http.Service(Path(folder) / "http")
        try:
            tallies = {
                "lsp": asyncio.run(lsp.campaign(seed, per_surface, Path(folder) / "lsp")),
                ".routetest": surfaces.routetest_campaign(seed, per_surface, project),
                "what-if": surfaces.whatif_campaign(seed, per_surface, project),
                "hotwax": surfaces.hotwax_campaign(seed, per_surface),
                "snapshots": snapshots.snapshots_campaign(seed, per_surface,
                                                          Path(folder) / "snapshots"),
                "plan": contracts.plan_campaign(seed, per_surface, project),
                "result": contracts.result_campaign(seed, per_surface, project, "sqlite://"),
                "http": http.campaign(seed, per_surface, service),
            }
        finally:
            service.close()
    return {surface: tallies[surface].counts() for surface in SURFACES}
