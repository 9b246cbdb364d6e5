"""AST nodes: what a ``.route`` file says, exactly as written, each with its source span.

The parser lowers Lark's tree into these nodes; nothing after the parser sees Lark. Nodes are
small frozen dataclasses compared by identity (so the checker and the language server can key
side tables on them); :func:`dump` gives a span-free structural form for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Union

from .source import Span

_node = dataclass(frozen=True, slots=True, kw_only=True, eq=False)


@_node
class Node:
    span: Span


@_node
class Ident(Node):
    """A name as written at one place (a field, a constant, a template...)."""

    name: str


# ---- values -------------------------------------------------------------------------------

@_node
class NameRef(Node):
    """A bare name in value position: a constant or a declared catalog id."""

    name: str


@_node
class StringLit(Node):
    """A quoted string: an id taken literally, a name, a cron expression or a time zone."""

    value: str


@_node
class NumberLit(Node):
    text: str
    unit: str | None = None

    @property
    def value(self) -> Decimal:
        return Decimal(self.text)


@_node
class ListLit(Node):
    items: tuple[Value, ...]


@_node
class MissingValue(Node):
    """Stands where the parser inserted a value to recover from a syntax error."""


Value = Union[NameRef, StringLit, NumberLit, ListLit, MissingValue]


# ---- conditions, sorts, actions -------------------------------------------------------------

@_node
class Condition(Node):
    """``field <op> value``; ``op`` is one of the ten comparison operators (``value`` is None
    for ``is null`` and ``is not null``), or ``not within`` (``not rejected within 7 days``).
    ``within`` is written for ``<=`` on promise dates."""

    field: Ident
    op: str
    value: Value | None
    written_within: bool = False


@_node
class Flag(Node):
    """An inventory setting: a bare flag, or ``shipment_threshold``/``split_cost`` with its
    value."""

    name: str
    value: Value | None = None


@_node
class SortKey(Node):
    field: Ident
    descending: bool = False
    nulls: str | None = None  # "first" | "last" | None (the default: last)


@_node
class Sort(Node):
    keys: tuple[SortKey, ...]


@_node
class Filter(Node):
    conditions: tuple[Condition, ...]


@_node
class Inventory(Node):
    members: tuple[Union[Condition, Flag], ...]


@_node
class Assign(Node):
    mode: Ident


@_node
class NextRule(Node):
    pass


@_node
class MoveToQueue(Node):
    queue: Value | None


@_node
class AutoCancel(Node):
    days: Value


@_node
class ClearAutoCancel(Node):
    pass


Action = Union[NextRule, MoveToQueue, AutoCancel, ClearAutoCancel]


@_node
class Unfilled(Node):
    actions: tuple[Action, ...]


RuleMember = Union[Assign, Inventory, Sort, Unfilled]


@_node
class OptimizeSetting(Node):
    """``name value`` in an ``optimize`` block (``mode report``, ``split_cost 4.00``)."""

    name: Ident
    value: Value


@_node
class Optimize(Node):
    """A routing's ``optimize { ... }`` block (routing_dsl.optimize.settings)."""

    settings: tuple[OptimizeSetting, ...]


# ---- rules, routings, groups ----------------------------------------------------------------

@_node
class Window(Node):
    """``active from "..." until "..."``: when a routing or rule runs (either bound may be
    left out); the times are read in the group's time zone."""

    start: StringLit | None
    end: StringLit | None


@_node
class Rule(Node):
    name: StringLit
    status: Ident | None
    extends: Ident | None
    body: tuple[RuleMember, ...] | None
    window: Window | None = None


@_node
class Template(Node):
    name: Ident
    body: tuple[RuleMember, ...]


@_node
class Routing(Node):
    name: StringLit
    status: Ident | None
    members: tuple[Union[Filter, Sort, Rule, Optimize], ...]
    window: Window | None = None


@_node
class Schedule(Node):
    cron: StringLit
    timezone: StringLit | None
    paused: bool = False


@_node
class Group(Node):
    name: StringLit
    store: Value
    members: tuple[Union[Schedule, Routing], ...]


@_node
class Use(Node):
    """``use std.hotwax`` (a stdlib module) or ``use "shared.route"`` (a file)."""

    target: str
    is_path: bool
    target_span: Span


@_node
class Let(Node):
    name: Ident
    value: Value


@_node
class Declared(Node):
    name: Ident
    doc: str | None


@_node
class Declare(Node):
    kind: Ident
    entries: tuple[Declared, ...]


@_node
class Version(Node):
    """``version "2026-11-bf"``: the label every batch and decision these rules make is
    recorded with (beside the plan's hash)."""

    label: StringLit


Item = Union[Use, Let, Declare, Template, Group, Version]


@dataclass(frozen=True, slots=True)
class Comment:
    span: Span
    text: str


@_node
class Module(Node):
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = ()


def children(node: Node):
    """The child nodes of ``node``, in field order."""
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield item


def walk(node: Node):
    """``node`` and all its descendants, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))


# Fields added to a node after its first release, left out of a dump when absent (so the
# dumps of files that do not use them stay as they were).
_ABSENT_UNLESS_GIVEN = frozenset({"window"})


def dump(node):
    """A span-free nested tuple of the node, for structural equality in tests."""
    if isinstance(node, Node):
        return (type(node).__name__,) + tuple(
            (f.name, dump(getattr(node, f.name)))
            for f in fields(node)
            if f.name not in ("span", "target_span", "comments")
            and not (f.name in _ABSENT_UNLESS_GIVEN and getattr(node, f.name) is None)
        )
    if isinstance(node, tuple):
        return tuple(dump(item) for item in node)
    return node
