"""Input validation shared by every reader: the numeric range the engines support, and schema
errors in the user's words.

**The numeric range**, defined here once: every number a snapshot, an order sent to the
service, a what-if statement or a `.routetest` file gives is finite and within
±MAX_INTEGER (2^53 - 1, the largest whole number a float, and so each engine, holds
exactly; a limit or a count beyond it would be rounded in one engine and not the other, and
a result holding it could not be written). The pydantic types below carry the range into
the models (and so into the JSON Schema); anything outside it is refused with the field's
path, e.g. `orders[3].ship_groups[0].items[1].quantity: 1e400 is outside the supported range
(finite numbers up to 9007199254740991)`.

**Schema errors**: a msgspec ValidationError as (JSON path, what belongs there). The
`.routetest` reader and the HotWax import validate their input against msgspec structs and
report the first mismatch as one line: `case[0].expect[1].quantity: expected a number, got a
string`."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec
from pydantic import BeforeValidator, Field

# ---- the supported numeric range ----------------------------------------------------------------

MAX_INTEGER = 2**53 - 1
RANGE = f"finite numbers up to {MAX_INTEGER}"

# Model field types (the models also refuse NaN and infinity: `allow_inf_nan=False`). Each
# carries its lower bound too: a field must not add a `ge` of its own, which pydantic would
# let the type's override.
Integer = Annotated[int, Field(ge=-MAX_INTEGER, le=MAX_INTEGER)]
Count = Annotated[int, Field(ge=0, le=MAX_INTEGER)]  # orders, days, limits
Number = Annotated[float, Field(ge=-MAX_INTEGER, le=MAX_INTEGER)]
NonNegative = Annotated[float, Field(ge=0, le=MAX_INTEGER)]
Positive = Annotated[float, Field(gt=0, le=MAX_INTEGER)]
# The same range for msgspec structs.
Whole = Annotated[int, msgspec.Meta(ge=-MAX_INTEGER, le=MAX_INTEGER)]
Real = Annotated[float, msgspec.Meta(ge=-MAX_INTEGER, le=MAX_INTEGER)]  # NaN, inf fail too


_DIGITS = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_MOMENT = None  # pydantic's own reading of a timestamp, built on first use (start-up)


def parse_moment(text: str) -> datetime:
    """A timestamp as the models read it (ISO 8601 text; docs/snapshot.md), for every reader
    of one: pydantic alone would also read a string of digits such as "-1" as a Unix time,
    which msgspec's decoder and the run store refused. Raises ValueError."""
    global _MOMENT
    if _DIGITS.fullmatch(text):
        raise ValueError("expected an ISO 8601 timestamp such as 2026-11-23T09:30:00-05:00")
    if _MOMENT is None:
        from pydantic import TypeAdapter
        _MOMENT = TypeAdapter(datetime)
    from pydantic import ValidationError
    try:
        return _MOMENT.validate_python(text)
    except ValidationError as error:
        from pydantic_core import PydanticCustomError
        first = error.errors()[0]
        raise PydanticCustomError(first["type"], first["msg"].replace("{", "(")
                                  .replace("}", ")")) from None


def iso_text(value):
    """The models' timestamp fields: text is read by `parse_moment` (parsed here: a strict
    model takes no text after a validator of its own)."""
    return parse_moment(value) if isinstance(value, str) else value


Moment = Annotated[datetime, BeforeValidator(iso_text)]  # a timestamp field of the models


def in_range(value) -> bool:
    """Whether ``value`` (a number) is finite and within ±MAX_INTEGER."""
    try:
        return -MAX_INTEGER <= value <= MAX_INTEGER  # False for NaN
    except TypeError:
        return False


def out_of_range(shown: str) -> str:
    """The message for a number outside the range, shown as it was written."""
    return f"{_clip(shown)} is outside the supported range ({RANGE})"


def number_text(value) -> str:
    """A number as JSON writes it (`NaN`, `Infinity`), or a string as it was given."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**60 else f"a number of {len(str(abs(value)))} digits"
    return str(value)


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


class Written(str):
    """A number as written in a JSON text (its exact characters)."""

    def value(self) -> float | int:
        if re.fullmatch(r"-?[0-9]+", self) and len(self) <= 4000:
            return int(self)
        try:
            return float(self)  # inf for 1e400 and for 400 digits; nan for NaN
        except ValueError:
            return math.nan


def written(text: bytes | str):
    """A JSON text parsed with each number kept as written (a `Written` string), for
    messages; None when it is not JSON."""
    try:
        return json.loads(text, parse_int=Written, parse_float=Written, parse_constant=Written)
    except (ValueError, RecursionError):
        return None


def at(document, location: tuple):
    """The value at ``location`` (keys and indexes) in ``document``, or None."""
    for part in location:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def first_out_of_range(document, location: tuple = ()) -> tuple[tuple, Written] | None:
    """The location and text of the first written number outside the range, depth first."""
    if isinstance(document, Written):
        return None if in_range(document.value()) else (location, document)
    items = document.items() if isinstance(document, dict) else enumerate(document) \
        if isinstance(document, list) else ()
    for key, item in items:
        found = first_out_of_range(item, (*location, key))
        if found:
            return found
    return None


def decimal_in_range(text: str) -> bool:
    """Whether a decimal numeral (digits, a sign, a point) is within the range, without
    turning it into a float first (which makes 400 digits infinity)."""
    digits = text.lstrip("+-").split(".")[0].lstrip("0")
    return len(digits) <= 16 and Decimal(text).copy_abs() <= MAX_INTEGER


# ---- schema errors -------------------------------------------------------------------------------

_TYPE_WORDS = {"str": "a string", "float": "a number", "int": "an integer",
               "int | float": "a number", "bool": "a boolean (true or false)", "array": "a list",
               "object": "a table", "date": "a date (2026-11-25)", "datetime":
               "a date and time", "time": "a time", "null": "null"}
_ERROR = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_BEYOND = re.compile(rf"expected (?:a number|an integer) [<>]= -?{MAX_INTEGER}(?:\.0)?|"
                     "number out of range")
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
    if _BEYOND.fullmatch(what):
        what = f"expected a number within the supported range ({RANGE})"
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
