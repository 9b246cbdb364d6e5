"""What-if statements: hypothetical changes applied to a snapshot in memory.

    close WH_NJ                  the facility ships nothing (it serves no product store)
    stock SKU-1 at WH_NJ = 0     the facility's available-to-promise of the product
    limit WH_NJ 100              its daily order limit (`limit WH_NJ none`: unlimited)

A patch file holds one statement per line (`#` starts a comment). A statement that does not
parse, or names a facility or product the snapshot does not have, is a WhatIfError naming the
statement (and the file line), with the closest ids as suggestions.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from ..snapshot import InventoryRow, Snapshot

_ID = r"(?:\"[^\"]+\"|[^\s\"=]+)"
_FORMS = (
    ("close", re.compile(rf"close\s+(?P<facility>{_ID})")),
    ("stock", re.compile(rf"stock\s+(?P<product>{_ID})\s+at\s+(?P<facility>{_ID})\s*=\s*"
                         r"(?P<number>-?\d+(?:\.\d+)?)")),
    ("limit", re.compile(rf"limit\s+(?P<facility>{_ID})\s+(?P<number>\d+|none)")),
)
USAGE = ("`close FACILITY`, `stock PRODUCT at FACILITY = N` or `limit FACILITY N|none`")


class WhatIfError(Exception):
    """A what-if statement that cannot be applied (the message says which and why)."""


@dataclass(frozen=True)
class Change:
    kind: str
    facility: str
    product: str | None = None
    number: float | None = None
    where: str = ""  # "--what-if" or "patch.txt:3", for messages

    def describe(self) -> str:
        if self.kind == "close":
            return f"close {self.facility}"
        if self.kind == "stock":
            return f"stock {self.product} at {self.facility} = {_plain(self.number)}"
        return f"limit {self.facility} {'none' if self.number is None else _plain(self.number)}"


def parse(statement: str, where: str = "--what-if") -> Change:
    text = " ".join(statement.split())
    for kind, form in _FORMS:
        match = form.fullmatch(text)
        if match:
            found = {k: v.strip('"') for k, v in match.groupdict().items() if v is not None}
            number = found.get("number")
            return Change(kind, found["facility"], found.get("product"),
                          None if number in (None, "none") else float(number), where)
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise WhatIfError(f"{where}: cannot read {shown!r}: expected {USAGE}")


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
            limit = None if change.number is None else int(change.number)
            facilities[change.facility] = facility.model_copy(
                update={"max_orders_per_day": limit})
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
        "inventory": [inventory[key] for key in order]})


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
