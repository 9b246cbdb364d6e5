"""`routing lsp` imports the protocol's types with attrs's generated methods taken from a cache
that `routing warm` writes (lsp/typecache.py): the cache is read, it changes nothing the
classes do, and a missing or broken cache means compiling them as usual. Each check runs in
a fresh interpreter, since the types are imported once a process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from routing_dsl.lsp.typecache import cache_path


def fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_routing_warm_writes_the_cache_beside_the_module(tmp_path):
    written = fresh(f"""
        from pathlib import Path
        from routing_dsl.lsp.typecache import write_cache
        print(write_cache(Path({str(tmp_path / 'types.marshal')!r})))""")
    assert int(written) > 500  # a code object for each class's generated methods
    assert cache_path().parent.name == "__pycache__"
    assert cache_path().parent.parent.name == "lsp"


def test_the_cached_methods_are_the_ones_used(tmp_path):
    """A cache whose entry for Position's methods is doctored (its ``__init__`` adds 100 to
    the line) shows in the positions made: the classes' methods come from the file."""
    path = tmp_path / "types.marshal"
    fresh(f"""
        import marshal
        from pathlib import Path
        from routing_dsl.lsp.typecache import load_types
        compiled = load_types(record=True)
        key = next(k for k in compiled if k[0].endswith("lsprotocol.types.Position>"))
        doctored = key[1].replace("_setattr('line', line)", "_setattr('line', line + 100)")
        assert doctored != key[1]
        compiled[key] = compile(doctored, key[0], "exec")
        Path({str(path)!r}).write_bytes(marshal.dumps(compiled))""")
    shown = fresh(f"""
        from pathlib import Path
        from routing_dsl.lsp.typecache import load_types
        load_types(path=Path({str(path)!r}))
        from lsprotocol import types
        print(types.Position(line=1, character=2).line)""")
    assert shown == "101"


def test_a_cached_import_gives_classes_that_behave_as_compiled_ones(tmp_path):
    path = tmp_path / "types.marshal"
    check = """
        from lsprotocol import types
        from pygls.protocol import default_converter
        a = types.Range(start=types.Position(line=1, character=2),
                        end=types.Position(line=3, character=4))
        converter = default_converter()
        document = converter.unstructure(a)
        print(repr(a), a == types.Range(types.Position(1, 2), types.Position(3, 4)),
              a != types.Range(types.Position(1, 2), types.Position(3, 5)), document,
              converter.structure(document, types.Range) == a)"""
    fresh(f"""
        from pathlib import Path
        from routing_dsl.lsp.typecache import write_cache
        write_cache(Path({str(path)!r}))""")
    cached = fresh(f"""
        from pathlib import Path
        from routing_dsl.lsp.typecache import load_types
        load_types(path=Path({str(path)!r}))""" + check)
    assert cached == fresh(check)
    assert "True True" in cached and cached.endswith("True")


def test_a_broken_or_missing_cache_compiles_as_usual(tmp_path):
    broken = tmp_path / "broken.marshal"
    broken.write_bytes(b"\x00not marshal")
    for path in (broken, tmp_path / "missing.marshal"):
        shown = fresh(f"""
            from pathlib import Path
            from routing_dsl.lsp.typecache import load_types
            load_types(path=Path({str(path)!r}))
            from lsprotocol import types
            print(repr(types.Position(line=1, character=2)))""")
        assert shown == "1:2"  # lsprotocol's own repr of a position
