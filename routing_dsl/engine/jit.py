"""Compiling the kernel: numba, the criteria's shared functions, and a cache that notices
when any of them changes.

`register` hands every `@jitable` function of the criteria registry to numba
(`register_jitable`): Python callers (the reference engine) keep calling the plain function,
compiled callers (the kernel) get it compiled, and LLVM inlines it. `jit` is
`numba.njit(cache=True)` with two differences:

- numba keys a cached function on its own source file only, so a kernel function calling a
  criterion in another file would keep its stale compiled code after the criterion changed.
  Here the key also holds a digest of every source the kernel compiles in (the criteria
  package, the shipping cost model, the kernel, this module and the IR), so any change to
  them recompiles.
- numba compiles a function called from compiled code once per distinct argument types, and
  a constant argument (``0``, ``True``) has its own literal type: every kernel function
  would be compiled again for each constant, and for the ``0`` its counters start from
  (numba types a call before a loop's later values reach it). Calls between kernel functions
  are typed on plain types (`numba.types.unliteral`), so one compiled version serves them
  all.

`helper` is `jit` for the functions the kernel's loop calls: no reference counting, no
wrapper for Python callers (see there). Nothing asks numba to inline at its IR level
(``inline="always"``): that copies the callee's IR into every caller before typing, and
with it the kernel took more than twice as long to compile, while LLVM inlines the small
functions anyway. What each of these saves: docs/performance.md, "The compiled kernel's
compile time".

`dispatcher` writes the kernel's dispatch by table: a function that calls the ``code``-th of
a list of functions (the registry's order), compiled and cached like the rest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import numbastart  # noqa: F401 - before numba starts: see numbastart
from numba import njit, types
from numba.core.caching import FunctionCache
from numba.extending import register_jitable

from .. import criteria, shipping  # noqa: F401 (shipping: its @jitable cost functions)
from ..criteria import shared
from .ir import STAGED_CONDITIONS

_PACKAGE = Path(__file__).resolve().parent.parent


# what the kernel compiles in: the criteria, the shipping cost model, the kernel itself, this
# module and the IR's codes (numba freezes their values). The engine's other modules (the
# loaders, the explainer, the live arrays) are Python callers: editing them must not cost a
# recompile of several minutes.
_COMPILED_SOURCES = ("criteria/*.py", "shipping/*.py", "engine/kernel.py", "engine/jit.py",
                     "engine/ir.py")


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for pattern in _COMPILED_SOURCES:
        for path in sorted(_PACKAGE.glob(pattern)):
            digest.update(path.relative_to(_PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


DIGEST = _sources_digest()


class _DependentCache(FunctionCache):
    """numba's cache, keyed on the kernel's sources too (see the module's docstring)."""

    def _index_key(self, sig, codegen):
        signature, magic, hashes = super()._index_key(sig, codegen)
        return signature, magic, (*hashes, DIGEST)


def _typed_on_plain_types(compiled) -> None:
    """Make calls to ``compiled`` from compiled code compile it for the arguments' plain
    types (see the module's docstring)."""
    template = compiled.get_call_template

    def get_call_template(args, kws):
        return template(tuple(types.unliteral(a) for a in args),
                        {k: types.unliteral(v) for k, v in kws.items()})

    compiled.get_call_template = get_call_template


def jit(function=None, **options):
    """``njit(cache=True, **options)`` with the dependent cache, compiled once for plain
    argument types."""
    def wrap(function):
        compiled = njit(cache=True, **options)(function)
        compiled._cache = _DependentCache(compiled.py_func)
        _typed_on_plain_types(compiled)
        return compiled
    return wrap(function) if function is not None else wrap


def helper(function):
    """`jit` for a kernel function that only reads and writes the arrays it is handed and
    returns no array: compiled without numba's reference counting (``_nrt=False``; numba
    refuses to compile one that allocates). numba counts references on every array of a
    table each time the table is passed, taken apart or dropped: for tables of dozens of
    arrays that was most of the kernel's compiled code and much of its running time, while
    the Python caller (`kernel.route_units`, which allocates the scratch) holds every array
    for the whole call anyway. Called from compiled code only, it has no wrapper for Python
    callers (``no_cpython_wrapper``), which for tables this wide is as large as the
    function."""
    return jit(function, _nrt=False, no_cpython_wrapper=True, no_cfunc_wrapper=True)


def register() -> None:
    for function in shared.JITABLE:  # scalar functions of arrays: helpers (see `helper`)
        if not getattr(function, "_routing_registered", False):
            register_jitable(_nrt=False, no_cpython_wrapper=True,
                             no_cfunc_wrapper=True)(function)
            function._routing_registered = True


register()


def dispatcher(name: str, functions: list, arguments: str):
    """A compiled ``name(code, <arguments>)`` that returns ``functions[code](<arguments>)``
    and raises for a code out of range: the kernel's table dispatch."""
    lines = [f"def {name}(code, {arguments}):"]
    namespace = {}
    for code, function in enumerate(functions):
        alias = f"_f{code}"
        namespace[alias] = function
        lines.append(f"    if code == {code}:\n        return {alias}({arguments})")
    lines.append(f"    raise ValueError('{name}: unknown code')")
    # compiled against this file's name so that numba can cache it (the code itself is in
    # the cache's key, and DIGEST covers the functions it calls)
    exec(compile("\n".join(lines) + "\n", __file__, "exec"), namespace)
    return helper(namespace[name])


INVENTORY_SORTS = list(criteria.REGISTRY("inventory_sort").values())
# inventory sort code -> value (NaN: missing); the codes are the registry's order
sort_value = dispatcher("sort_value", [c.kernel for c in INVENTORY_SORTS],
                        "view, r, f, n_products")
# inventory condition code (engine.ir.CONDITION_CODES) -> whether the fact ``value`` and the
# item fact ``item_value`` pass ``op`` and ``number``
condition_passes = dispatcher("condition_passes", [c.kernel for c in STAGED_CONDITIONS],
                              "op, number, value, item_value")
