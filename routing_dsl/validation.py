"""Schema errors in the user's words: a msgspec ValidationError as (JSON path, what belongs
there). The `.routetest` reader and the HotWax import validate their input against msgspec
structs and report the first mismatch as one line: `case[0].expect[1].quantity: expected a
number, got a string`."""

from __future__ import annotations

import re

import msgspec

_TYPE_WORDS = {"str": "a string", "float": "a number", "int": "an integer",
               "int | float": "a number", "bool": "a boolean (true or false)", "array": "a list",
               "object": "a table", "date": "a date (2026-11-25)", "datetime":
               "a date and time", "time": "a time", "null": "null"}
_ERROR = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNION = re.compile(r"`((?:[a-z]+ \| )+[a-z]+)`")


def _union(text: str, object_word: str) -> str:
    words = []
    for name in text.split(" | "):
        word = object_word if name == "object" else _TYPE_WORDS.get(name, f"`{name}`")
        if word not in words and not (name == "float" and "an integer" in words):
            words.append(word)
    if "an integer" in words and "a number" in words:
        words.remove("an integer")
    return " or ".join(words)


def problem(error: msgspec.ValidationError, object_word: str = "an object") -> tuple[str, str]:
    """(path without `$.`, what is wrong) for msgspec's one error; ``object_word`` names a
    mapping as the input format does (a TOML table, a JSON object)."""
    found = _ERROR.match(str(error))
    what, path = found.group("what"), (found.group("path") or "").lstrip(".")
    what = _UNION.sub(lambda m: _union(m.group(1), object_word), what)
    what = re.sub(r"`([^`]+)`", lambda m: object_word if m.group(1) == "object" else
                  _TYPE_WORDS.get(m.group(1), f"`{m.group(1)}`"), what)
    what = what[:1].lower() + what[1:]
    if "RFC3339" in what:
        what = "expected a date (2026-11-25)"
    return path, what


def not_unicode(value, path: str = "") -> str | None:
    """The path of the first string (or key) in a JSON value that is not valid Unicode: a
    lone surrogate, which JSON's `\\ud800` escapes can write and no encoder can."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "$"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}".lstrip(".")
        found = not_unicode(key, where) if isinstance(key, str) else None
        found = found or not_unicode(item, where)
        if found:
            return found
    return None
