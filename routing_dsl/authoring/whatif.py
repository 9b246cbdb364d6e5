"""What-if statements: hypothetical changes applied to a snapshot in memory.

    close WH_NJ                  the facility ships nothing (it serves no product store)
    stock SKU-1 at WH_NJ = 0     the facility's available-to-promise of the product
    limit WH_NJ 100              its daily order limit (`limit WH_NJ none`: unlimited)

A patch file holds one statement per line (`#` starts a comment). A statement that does not
parse, names a facility or product the snapshot does not have, or gives a number out of range
(not a plain decimal, outside the supported range of validation.py, or a negative limit) is a WhatIfError naming the
statement (and the file line), with the closest ids as suggestions. The grammar is the
:data:`GRAMMAR` table: the parser, the usage text and the fuzzers all read it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from ..snapshot import Inventory, InventoryRow, Snapshot
from ..validation import RANGE, decimal_in_range

_ID = r"(?:\"[^\"]+\"|[^\s\"=]+)"


@dataclass(frozen=True)
class Slot:
    """A value in a statement: an id, or a number and the range it may take."""

    name: str
    kind: str  # "id", "quantity" (a number, negative allowed, like a snapshot's atp) or "limit"
    meaning: str  # for messages


FACILITY = Slot("facility", "id", "facility")
PRODUCT = Slot("product", "id", "product")
QUANTITY = Slot("number", "quantity", "stock")
LIMIT = Slot("number", "limit", "daily order limit")
# The grammar, declared once: the parser, the usage text and the fuzzers read it.
GRAMMAR: dict[str, tuple[str | Slot, ...]] = {
    "close": ("close", FACILITY),
    "stock": ("stock", PRODUCT, "at", FACILITY, "=", QUANTITY),
    "limit": ("limit", FACILITY, LIMIT),
}
_PLACEHOLDER = {"facility": "FACILITY", "product": "PRODUCT", "quantity": "N", "limit": "N|none"}


def _form(parts: tuple[str | Slot, ...]) -> re.Pattern:
    pattern = ""
    for part in parts:
        if isinstance(part, Slot):
            token = _ID if part.kind == "id" else r"\S+"  # numbers are read (and refused) below
            piece = f"(?P<{part.name}>{token})"
        else:
            piece = re.escape(part)
        if pattern:
            pattern += r"\s*" if "=" in (part, pattern[-1:]) else r"\s+"
        pattern += piece
    return re.compile(pattern)


_FORMS = tuple((kind, _form(parts)) for kind, parts in GRAMMAR.items())
USAGE = ", ".join(
    "`" + " ".join(_PLACEHOLDER[p.kind] if isinstance(p, Slot) and p.kind != "id"
                   else _PLACEHOLDER[p.name] if isinstance(p, Slot) else p for p in parts) + "`"
    for parts in GRAMMAR.values())


class WhatIfError(Exception):
    """A what-if statement that cannot be applied (the message says which and why)."""


@dataclass(frozen=True)
class Change:
    kind: str
    facility: str
    product: str | None = None
    number: float | int | None = None
    where: str = ""  # "--what-if" or "patch.txt:3", for messages

    def describe(self) -> str:
        if self.kind == "close":
            return f"close {self.facility}"
        if self.kind == "stock":
            return f"stock {self.product} at {self.facility} = {_plain(self.number)}"
        return f"limit {self.facility} {'none' if self.number is None else _plain(self.number)}"


def parse(statement: str, where: str = "--what-if") -> Change:
    """One statement as a Change, or a WhatIfError naming it and what is wrong."""
    text = " ".join(statement.split())
    shown = repr(text if len(text) <= 80 else text[:77] + "...")
    for kind, form in _FORMS:
        match = form.fullmatch(text)
        if match:
            found = {k: v.strip('"') for k, v in match.groupdict().items() if v is not None}
            slot = next((p for p in GRAMMAR[kind] if isinstance(p, Slot) and p.kind != "id"),
                        None)
            number = None
            if slot is not None:
                try:
                    number = _number(found["number"], slot)
                except ValueError as error:
                    raise WhatIfError(f"{where}: {shown}: {error}") from None
            return Change(kind, found["facility"], found.get("product"), number, where)
    raise WhatIfError(f"{where}: cannot read {shown}: expected {USAGE}")


def _number(token: str, slot: Slot) -> float | int | None:
    """A number slot's value, refused when it is no number (`nan`, `1e5`), outside the
    supported range (validation.py: a float would round it, or become infinity), or negative
    where that means nothing."""
    shown = repr(token if len(token) <= 30 else token[:27] + "...")
    if slot.kind == "limit":
        if token == "none":
            return None
        if not re.fullmatch(r"-?[0-9]+", token):
            raise ValueError(f"the {slot.meaning} {shown} is not a whole number (or `none`)")
        if token.startswith("-"):
            raise ValueError(f"the {slot.meaning} {shown} is negative; it is 0 or more "
                             "(or `none`: no limit)")
    elif not re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", token):
        raise ValueError(f"the {slot.meaning} {shown} is not a number (write it like 12 "
                         "or 2.5)")
    if not decimal_in_range(token):  # never through a float: 400 digits would be infinity
        raise ValueError(f"the {slot.meaning} {shown} is outside the supported range ({RANGE})")
    return int(token) if slot.kind == "limit" else float(token)


def read_patch(path: Path) -> list[Change]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise WhatIfError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    changes = []
    for number, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            changes.append(parse(line, f"{path}:{number}"))
    return changes


def apply(snapshot: Snapshot, changes: list[Change]) -> Snapshot:
    """``snapshot`` with ``changes`` applied in order (the snapshot itself is not changed)."""
    if not changes:
        return snapshot
    facilities = {f.id: f for f in snapshot.facilities}
    products = {p.id for p in snapshot.products} | {r.product for r in snapshot.inventory}
    inventory = {(r.facility, r.product): r for r in snapshot.inventory}
    order = list(inventory)
    for change in changes:
        facility = facilities.get(change.facility)
        if facility is None or facility.virtual:
            raise WhatIfError(f"{change.where}: {change.describe()}: no facility "
                              f"{change.facility!r}{_suggest(change.facility, facilities)}")
        if change.kind == "close":
            facilities[change.facility] = facility.model_copy(update={"product_stores": []})
        elif change.kind == "limit":
            facilities[change.facility] = facility.model_copy(
                update={"max_orders_per_day": change.number})
        else:
            if change.product not in products:
                raise WhatIfError(f"{change.where}: {change.describe()}: no product "
                                  f"{change.product!r}{_suggest(change.product, products)}")
            key = (change.facility, change.product)
            row = inventory.get(key)
            if row is None:
                order.append(key)
                row = InventoryRow(facility=change.facility, product=change.product, atp=0)
            inventory[key] = row.model_copy(update={"atp": change.number})
    return snapshot.model_copy(update={
        "facilities": [facilities[f.id] for f in snapshot.facilities],
        "inventory": Inventory([inventory[key] for key in order])})


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
