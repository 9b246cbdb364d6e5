"""Values generated from a Python type, and hostile variants of them.

:class:`Values` makes a *valid* value of a type described by annotations: attrs classes
(lsprotocol), msgspec Structs (our input schemas), unions, optionals, literals, enums,
sequences, mappings and scalars, with `Annotated` msgspec bounds respected. Field names can be
given their own pools (`uri` from the documents that exist, `facility` from the snapshot's), so
that most generated inputs reach deep into the code instead of failing at the first id.

:func:`mutate` then breaks one place of the value's JSON shape: a value of the wrong type, a
number out of any range (2^31, 2^53 + 1, 2^64, 10^400, infinity, NaN), a string with a NUL, a
missing key, an unknown key. Every generated input is valid except for what one mutation
did, so a failure points at one path.
"""

from __future__ import annotations

import copy
import datetime
import enum
import math
import random
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

Pools = Mapping[str, Callable[[random.Random], Any]]

# Hostile scalars: each is a value of some JSON (or TOML) type that a reader may not expect.
HOSTILE_NUMBERS: tuple = (-1, -2**31, 2**31 - 1, 2**31, 2**53, 2**53 + 1, 2**63, 2**64,
                          10**400, -10**400, 1e308, -0.0, 0.5, 1e-320, math.inf, -math.inf,
                          math.nan)
HOSTILE_STRINGS: tuple = ("", " ", "\x00", "a\x00b", "\u202e", "\ud83d\ude00", "\U0001f600",
                          "9" * 400, "1e999", "NaN", "-1", "null", "x" * 5000, "../" * 20,
                          "file:///dev/zero", "\n", "\t\r", "é" * 3)
HOSTILE_CONTAINERS: tuple = ([], {}, [[]], [{}], {"": None}, [1, "a", None],
                             [[[[[[[[[[[]]]]]]]]]]])
HOSTILE_OTHER: tuple = (True, False, None, datetime.date(2026, 2, 28),
                        datetime.datetime(2026, 2, 28, 12, 0), datetime.time(12, 0))
JSON_HOSTILE = HOSTILE_NUMBERS + HOSTILE_STRINGS + HOSTILE_CONTAINERS + HOSTILE_OTHER[:3]


def _has_none(value) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return any(_has_none(v) for v in value)
    if isinstance(value, dict):
        return any(_has_none(v) for v in value.values())
    return False


TOML_HOSTILE = tuple(v for v in HOSTILE_NUMBERS + HOSTILE_STRINGS + HOSTILE_CONTAINERS
                     + HOSTILE_OTHER if not _has_none(v) and not (
                         isinstance(v, int) and not -2**63 <= v < 2**63))  # TOML: 64-bit ints


class Values:
    """Valid values of annotated types (see the module)."""

    def __init__(self, rng: random.Random, pools: Pools | None = None, max_depth: int = 6):
        self.rng = rng
        self.pools = dict(pools or {})
        self.max_depth = max_depth

    def make(self, tp: Any, name: str = "", depth: int = 0) -> Any:
        rng = self.rng
        if name in self.pools:
            return self.pools[name](rng)
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *extra = typing.get_args(tp)
            return self._bounded(base, extra, name, depth)
        if tp is Any or tp is object:
            return rng.choice([0, 1, "a", True, [], {}])
        if origin in (typing.Union, types.UnionType):
            arms = [a for a in typing.get_args(tp)
                    if a is not type(None) and a is not msgspec.UnsetType]
            if len(arms) < len(typing.get_args(tp)) and (depth >= self.max_depth
                                                         or rng.random() < 0.3):
                return msgspec.UNSET if msgspec.UnsetType in typing.get_args(tp) else None
            return self.make(rng.choice(arms), name, depth)
        if origin is typing.Literal:
            return rng.choice(typing.get_args(tp))
        if origin in (list, tuple, Sequence, set, frozenset) or tp in (list, tuple):
            args = typing.get_args(tp) or (Any,)
            count = 0 if depth >= self.max_depth else rng.choice([0, 1, 1, 2, 3])
            return [self.make(args[0], name, depth + 1) for _ in range(count)]
        if origin in (dict, Mapping) or tp is dict:
            key, value = typing.get_args(tp) or (str, Any)
            count = 0 if depth >= self.max_depth else rng.choice([0, 1, 2])
            return {self.make(key, "", depth + 1): self.make(value, "", depth + 1)
                    for _ in range(count)}
        if isinstance(tp, type):
            return self._instance(tp, name, depth)
        raise TypeError(f"no generator for {tp!r}")

    def _instance(self, tp: type, name: str, depth: int) -> Any:
        rng = self.rng
        if issubclass(tp, enum.Enum):
            return rng.choice(list(tp))
        if tp is bool:
            return rng.random() < 0.5
        if issubclass(tp, int):
            return rng.choice([0, 0, 1, 2, 3, 7, 42])
        if tp is float:
            return rng.choice([0.0, 1.0, 2.5, 40.0])
        if tp is str:
            return rng.choice(["a", "x1", "Name", "value with spaces", "é"])
        if tp is datetime.date:
            return datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randrange(700))
        if hasattr(tp, "__attrs_attrs__"):
            return self._attrs(tp, depth)
        if issubclass(tp, msgspec.Struct):
            hints = typing.get_type_hints(tp, include_extras=True)
            values = {}
            for field in msgspec.structs.fields(tp):
                optional = field.default is not msgspec.NODEFAULT or \
                    field.default_factory is not msgspec.NODEFAULT
                if optional and rng.random() < 0.4:
                    continue
                values[field.name] = self.make(hints[field.name], field.name, depth + 1)
            return tp(**values)
        if tp is type(None):
            return None
        raise TypeError(f"no generator for {tp!r}")

    def _attrs(self, tp: type, depth: int) -> Any:
        import attrs
        hints = typing.get_type_hints(tp)
        fields = attrs.fields(tp)
        values = {}
        for field in fields:
            optional = field.default is not attrs.NOTHING
            if optional and (depth >= self.max_depth or self.rng.random() < 0.5):
                continue
            values[field.name] = self.make(hints[field.name], field.name, depth + 1)
        # a validator may refuse what the type allows (`kind` must be "rename", a line must
        # fit LSP's uinteger): then the required fields alone, then their plainest values
        required = {f.name for f in fields if f.default is attrs.NOTHING}
        plain = {k: 0 if isinstance(v, int) and not isinstance(v, bool) else v
                 for k, v in values.items() if k in required}
        for attempt in (values, {k: v for k, v in values.items() if k in required}, plain):
            try:
                return tp(**attempt)
            except (TypeError, ValueError):
                continue
        return tp(**plain)

    def _bounded(self, base: Any, extra: list, name: str, depth: int) -> Any:
        meta = next((m for m in extra if isinstance(m, msgspec.Meta)), None)
        value = self.make(base, name, depth)
        if meta is None:
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            low = meta.ge if meta.ge is not None else meta.gt
            high = meta.le if meta.le is not None else meta.lt
            if low is not None and value < low:
                value = low
            if high is not None and value > high:
                value = high
        if isinstance(value, str) and meta.min_length and len(value) < meta.min_length:
            value = value + "x" * meta.min_length
        return value


# ---- mutation of a JSON (or TOML) shape ---------------------------------------------------------

Path = tuple  # keys and indexes from the root


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every place in a JSON-like value, the root first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, prefix + (index,))
    return found


def show(path: Path) -> str:
    """`$.case[0].expect[1].order`, as JSON paths are written."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def mutate(rng: random.Random, value: Any, hostile: Sequence = JSON_HOSTILE,
           keep: Callable[[Path], bool] = lambda path: True,
           replace_only: bool = False) -> tuple[Any, str]:
    """A copy of ``value`` broken at one place (chosen among the places ``keep`` allows),
    and what was done there (with ``replace_only``, always a hostile value put there)."""
    value = copy.deepcopy(value)
    places = [p for p in paths(value) if keep(p)] or [()]
    path = rng.choice(places)
    parent = value_at(value, path[:-1]) if path else None
    kind = 1.0 if replace_only else rng.random()
    if path and kind < 0.15 and isinstance(parent, dict):
        del parent[path[-1]]
        return value, f"removed {show(path)}"
    if kind < 0.22:
        target = value_at(value, path)
        if isinstance(target, dict):
            target[rng.choice(["unknown", "Order", "x" * 300, ""])] = 1
            return value, f"unknown key in {show(path)}"
        if isinstance(target, list):
            target.extend(copy.deepcopy(target[:1]) * rng.choice([2, 1000]))
            return value, f"repeated {show(path)}"
    replacement = copy.deepcopy(rng.choice(list(hostile)))
    if not path:
        return replacement, f"replaced $ with {_short(replacement)}"
    parent[path[-1]] = replacement
    return value, f"{show(path)} = {_short(replacement)}"


def value_at(value: Any, path: Path) -> Any:
    for part in path:
        value = value[part]
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- valid values of a JSON Schema ---------------------------------------------------------------

class SchemaValues:
    """Valid values of a JSON Schema: pydantic's (plans, results, snapshots) or an OpenAPI
    document's (request bodies, parameters). ``root`` is the document `$ref`s point into;
    properties named in ``pools`` take values from their pool (ids that exist), so that most
    inputs reach past the first lookup."""

    def __init__(self, rng: random.Random, root: dict, pools: Pools | None = None,
                 max_depth: int = 6):
        self.rng = rng
        self.root = root
        self.pools = dict(pools or {})
        self.max_depth = max_depth

    _TYPES = {"string": str, "object": dict, "array": list, "integer": int,
              "number": (int, float), "boolean": bool, "null": type(None)}

    def fits(self, value: Any, schema: dict) -> bool:
        """Whether ``value`` has a type ``schema`` admits (its `type`, or one of its arms')."""
        schema = self.resolve(schema)
        arms = schema.get("anyOf") or schema.get("oneOf")
        if arms:
            return any(self.fits(value, arm) for arm in arms)
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind else []
        if kinds and not any(isinstance(value, self._TYPES.get(k, object)) for k in kinds):
            return False
        if isinstance(value, str):  # e.g. an unknown id "" where one character is the least
            return schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
        return True

    def resolve(self, schema: dict) -> dict:
        while "$ref" in schema:
            target: Any = self.root
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = target
        return schema

    def make(self, schema: dict, name: str = "", depth: int = 0) -> Any:
        rng = self.rng
        schema = self.resolve(schema)
        if name in self.pools:
            # a pool is named by property; another operation may give that name another
            # type (an order document here, an order id there): the schema decides
            value = self.pools[name](rng)
            if self.fits(value, schema):
                return value
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return rng.choice(schema["enum"])
        arms = schema.get("anyOf") or schema.get("oneOf")
        if arms:
            real = [a for a in arms if self.resolve(a).get("type") != "null"]
            if len(real) < len(arms) and (not real or depth >= self.max_depth
                                          or rng.random() < 0.3):
                return None
            return self.make(rng.choice(real), name, depth)
        if "allOf" in schema:
            merged: dict = {}
            for part in schema["allOf"]:
                merged.update(self.resolve(part))
            return self.make(merged, name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = rng.choice(kind)
        if kind is None:
            kind = "object" if "properties" in schema else (
                "array" if "items" in schema else rng.choice(["string", "integer", "boolean"]))
        return getattr(self, f"_{kind}")(schema, name, depth)

    def _object(self, schema: dict, name: str, depth: int) -> dict:
        rng = self.rng
        required = set(schema.get("required", ()))
        found = {}
        for key, sub in schema.get("properties", {}).items():
            if key in required or (depth < self.max_depth and rng.random() < 0.6):
                found[key] = self.make(sub, key, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not schema.get("properties") and depth < self.max_depth:
            for _ in range(rng.choice([0, 1, 2])):
                key = self.pools[f"{name}.key"](rng) if f"{name}.key" in self.pools \
                    else rng.choice(["a", "k1", "Key"])
                found[key] = self.make(extra, "", depth + 1)
        return found

    def _array(self, schema: dict, name: str, depth: int) -> list:
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", low + 3)
        count = low if depth >= self.max_depth else self.rng.randint(low, min(high, low + 3))
        if "prefixItems" in schema:
            return [self.make(s, name, depth + 1) for s in schema["prefixItems"]]
        return [self.make(schema.get("items", {}), name, depth + 1) for _ in range(count)]

    def _string(self, schema: dict, name: str, depth: int) -> str:
        rng = self.rng
        form = schema.get("format")
        if form == "date-time":
            day = datetime.datetime(2026, 11, 1, 9, 30) + datetime.timedelta(
                hours=rng.randrange(24 * 60))
            return day.isoformat() + rng.choice(["Z", "-05:00", "+00:00"])
        if form == "date":
            return (datetime.date(2026, 11, 1) + datetime.timedelta(days=rng.randrange(60))
                    ).isoformat()
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if "pattern" in schema:
            for _ in range(20):  # an example of the pattern that is also long enough
                text = regex_example(schema["pattern"], rng)
                if low <= len(text) <= (high if high is not None else len(text)):
                    return text
            return text
        text = rng.choice(["a", "x1", "Name", "value with spaces", "é"])
        if len(text) < low:
            text += "x" * (low - len(text))
        return text[:high] if high is not None else text

    def _number(self, schema: dict, name: str, depth: int, whole: bool = False) -> Any:
        rng = self.rng
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        picks = [0, 1, 2, 3, 7, 42] if whole else [0.0, 1.0, 2.5, 40.0, 0.25]
        value = rng.choice(picks)
        if low is not None and value <= low:
            value = low + (1 if "exclusiveMinimum" in schema or value < low else 0)
        if high is not None and value >= high:
            value = high - (1 if "exclusiveMaximum" in schema or value > high else 0)
        return int(value) if whole else float(value)

    def _integer(self, schema: dict, name: str, depth: int) -> int:
        return self._number(schema, name, depth, whole=True)

    def _boolean(self, schema: dict, name: str, depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: dict, name: str, depth: int) -> None:
        return None


def regex_example(pattern: str, rng: random.Random) -> str:
    """A string the regular expression matches (for the patterns schemas carry: classes,
    alternatives, groups, repeats, anchors), made from its parse tree."""
    import re
    import re._constants as c  # the stdlib's own regex parser: the grammar, once
    import re._parser as parser

    def one_of(items) -> str:
        negate = any(op is c.NEGATE for op, _ in items)
        allowed = []
        for op, arg in items:
            if op is c.LITERAL:
                allowed.append(chr(arg))
            elif op is c.RANGE:
                allowed += [chr(arg[0]), chr(arg[1])]
            elif op is c.CATEGORY:
                allowed.append({c.CATEGORY_DIGIT: "7", c.CATEGORY_SPACE: " ",
                                c.CATEGORY_WORD: "a"}.get(arg, "a"))
        if not negate:
            return rng.choice(allowed or ["a"])
        klass = re.compile("[" + re.escape("".join(allowed)) + "]") if allowed else None
        for ch in "aZ7 -_.é":
            if klass is None or not klass.fullmatch(ch):
                return ch
        return "q"

    def walk(tokens) -> str:
        out = []
        for op, arg in tokens:
            if op is c.LITERAL:
                out.append(chr(arg))
            elif op is c.NOT_LITERAL:
                out.append("a" if chr(arg) != "a" else "b")
            elif op is c.ANY:
                out.append("a")
            elif op is c.IN:
                out.append(one_of(arg))
            elif op is c.BRANCH:
                out.append(walk(rng.choice(arg[1])))
            elif op is c.SUBPATTERN:
                out.append(walk(arg[3]))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
                low, high, inner = arg
                high = low + 3 if high is c.MAXREPEAT else high
                out.append("".join(walk(inner) for _ in range(rng.randint(low, min(high,
                                                                                 low + 3)))))
            elif op is c.CATEGORY:
                out.append(one_of([(op, arg)]))
        return "".join(out)

    text = walk(parser.parse(pattern))
    if re.search(pattern, text):
        return text
    for fallback in ("", "a", "1", "a1"):
        if re.search(pattern, fallback):
            return fallback
    return text
