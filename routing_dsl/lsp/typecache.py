"""Importing the protocol's types without compiling them again: most of `routing lsp`'s
start-up.

`lsprotocol.types` declares some 570 attrs classes, and attrs writes each class's methods
(``__init__``, ``__eq__``, ``__repr__``...) as source text and compiles it when the class is
created: in every process, about 40% of the import's CPU. The source attrs writes depends
only on the class, so the code objects it compiles are kept in a file beside this module
(``__pycache__``, marshal, tagged with Python's bytecode version) and reused when the very
same source comes to be compiled again: another attrs or lsprotocol writes other sources,
which are compiled as usual. `routing warm` writes the file (as
it writes the compiled kernel); a missing or unreadable file means compiling as
usual, and a source not in the file is compiled as usual. Nothing else of attrs changes:
the methods are the same code, evaluated in the same namespaces.
"""

from __future__ import annotations

import marshal
import sys
from importlib.util import MAGIC_NUMBER
from pathlib import Path

# attrs's compile step, as attrs 23 to 25 name and call it; another attrs is left alone
_HOOK = "_compile_and_eval"
_PARAMETERS = ("script", "globs", "locs", "filename")


def cache_path() -> Path:
    tag = f"{sys.implementation.cache_tag}-{MAGIC_NUMBER.hex()}"
    return Path(__file__).parent / "__pycache__" / f"lsprotocol-types.{tag}.marshal"


def load_types(record: bool = False, path: Path | None = None) -> dict | None:
    """Import `lsprotocol.types` with attrs's compiled methods taken from the cache (at
    ``path``, by default `cache_path()`) where it has them. With ``record``, returns every
    (filename, source) -> code compiled, to write."""
    if "lsprotocol.types" in sys.modules and not record:
        return None
    hooked = _hookable()
    if hooked is None:
        import lsprotocol.types  # noqa: F401 - another attrs: imported as it comes
        return None
    make, original = hooked
    cached = {} if record else _read(path or cache_path())
    compiled: dict = {}

    def compile_and_eval(script, globs, locs=None, filename=""):
        code = cached.get((filename, script))
        if code is None:
            code = compile(script, filename, "exec")
        if record:
            compiled[(filename, script)] = code
        eval(code, globs, locs)  # noqa: S307 - attrs's own generated source, as attrs does

    setattr(make, _HOOK, compile_and_eval)
    try:
        if record:  # a fresh import, so that every class is created again
            for name in [m for m in sys.modules if m.startswith("lsprotocol")]:
                del sys.modules[name]
        import lsprotocol.types  # noqa: F401
    finally:
        setattr(make, _HOOK, original)
    return compiled if record else None


def write_cache(path: Path | None = None) -> int:
    """Write the cache (what `routing warm` calls); the number of code objects written, 0
    when the package's folder is not writable (the language server then compiles them)."""
    compiled = load_types(record=True) or {}
    path = path or cache_path()
    try:
        path.parent.mkdir(exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(marshal.dumps(compiled))
        partial.replace(path)
    except OSError:
        return 0
    return len(compiled)


def _hookable():
    try:
        import inspect

        import attr._make as make
        original = getattr(make, _HOOK)
        if tuple(inspect.signature(original).parameters) != _PARAMETERS:
            return None
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return make, original


def _read(path: Path) -> dict:
    try:
        loaded = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
