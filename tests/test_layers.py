"""The layers hold: nothing in the package imports the CLI (the front doors call the
application layer, which never exits), no module imports another's private names, and a
command loads only what it needs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "routing_dsl"
FRONT_DOOR = {"routing_dsl.cli", "routing_dsl.__main__"}


def module_name(path, root=ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path, root=ROOT) -> set[str]:
    """Every module ``path`` imports, relative imports resolved (``from . import x`` counts
    as importing both the package and ``package.x``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def test_no_module_in_the_package_imports_the_cli():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 40
    offenders = [module_name(path) for path in modules
                 if module_name(path) not in FRONT_DOOR
                 and "routing_dsl.cli" in imported(path)]
    assert offenders == [], f"these import the CLI instead of routing_dsl.app: {offenders}"


def test_the_import_check_sees_relative_imports(tmp_path):
    # the test above is only worth something if it resolves what the package writes
    (tmp_path / "routing_dsl" / "service").mkdir(parents=True)
    sample = tmp_path / "routing_dsl" / "service" / "x.py"
    for text in ("from ..cli import main\n", "from .. import cli\n",
                 "import routing_dsl.cli as front\n", "from routing_dsl.cli import main\n"):
        sample.write_text(text)
        assert "routing_dsl.cli" in imported(sample, tmp_path), text
    sample.write_text("from ..app import load_plan\nfrom . import client\n")
    assert "routing_dsl.cli" not in imported(sample, tmp_path)


def private_imports(path) -> set[tuple[str, str]]:
    """(module, name) for each underscore name ``path`` imports from another module (dunder
    names aside): what the other module keeps to itself. A package's own private submodules
    (`from . import _jit`) are its own business."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            origin = "." * node.level + (node.module or "")
            found.update((origin, alias.name) for alias in node.names
                         if alias.name.startswith("_") and not alias.name.startswith("__")
                         and not (origin == "." and (path.parent / f"{alias.name}.py").exists()))
    return found


def test_no_module_imports_another_modules_private_names():
    """Modules talk through public names (the runtime's protocol and classes, each package's
    public functions), so a module's underscore names can change without breaking another."""
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        found = private_imports(path)
        if found:
            offenders[name] = sorted(found)
    assert offenders == {}, f"these import private names: {offenders}"


def test_the_private_import_check_sees_what_it_should(tmp_path):
    sample = tmp_path / "x.py"
    for text in ("from .interpreter import _Interpreter\n", "from ..a.b import c, _d\n",
                 "from routing_dsl.criteria import _jit\n"):
        sample.write_text(text)
        assert private_imports(sample), text
    sample.write_text("from .a import b as _b, __version__\nimport routing_dsl._resources\n")
    assert not private_imports(sample)
    (tmp_path / "_own.py").write_text("")
    sample.write_text("from . import _own\n")  # the package's own private submodule
    assert not private_imports(sample)
    sample.write_text("from . import _other\n")  # a private name of the package's __init__
    assert private_imports(sample)


def test_the_options_name_what_the_engines_and_executors_are():
    from routing_dsl import app
    from routing_dsl.engine import ENGINES
    from routing_dsl.scaleout import EXECUTORS
    assert app.ENGINES == ENGINES
    assert app.EXECUTORS == EXECUTORS


HEAVY = ("numba", "numpy", "sqlalchemy", "fastapi", "starlette", "uvicorn", "pydantic",
         "croniter", "dateutil",
         "routing_dsl.engine", "routing_dsl.interpreter", "routing_dsl.runtime", "routing_dsl.ops",
         "routing_dsl.service")


def loaded_by(arguments: list[str] | None) -> list[str]:
    """The heavy modules a fresh process has loaded after importing the CLI and, with
    ``arguments``, running that command."""
    script = (
        "import json, sys\n"
        "from routing_dsl.cli import main\n"
        f"arguments = {arguments!r}\n"
        "if arguments is not None:\n"
        "    try:\n"
        "        main(arguments)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


@pytest.mark.parametrize("arguments", [
    None, ["--help"], ["check", "examples/omnichannel/omnichannel.route"],
    ["fmt", "--check", "examples/omnichannel/omnichannel.route"],
], ids=["import", "help", "check", "fmt"])
def test_checking_and_formatting_load_no_engine_database_or_web_framework(arguments):
    """`routing check` is what editors and pre-commit hooks run on every save: it must start
    fast (issue 27: within 10x of an empty Python), so it never loads numba, numpy, the
    engines, SQLAlchemy or FastAPI."""
    assert loaded_by(arguments) == []


def test_a_small_run_loads_neither_the_compiled_engine_nor_a_database():
    """`routing run` on an example routes it with the reference engine (a small snapshot:
    the fast engine would spend longer importing numba and loading its compiled code than
    the whole run takes; both write the same bytes), and loads no database or web
    framework: issue 27 wants it within 25x of an empty Python."""
    loaded = loaded_by(["run", "examples/omnichannel/omnichannel.route", "--snapshot",
                        "examples/omnichannel/snapshot.json", "--out", "-"])
    assert [m for m in loaded if m.split(".")[0] in
            ("numba", "numpy", "sqlalchemy", "fastapi", "starlette", "uvicorn")] == []
    assert "routing_dsl.runtime.run" in loaded  # it did route
    assert not any(m.startswith(("routing_dsl.engine.fast", "routing_dsl.engine.kernel",
                                 "routing_dsl.ops", "routing_dsl.service")) for m in loaded)
