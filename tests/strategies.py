"""Hypothesis strategies that write syntactically valid .route text, with random spacing and
comments, for the formatter and parser properties."""

from __future__ import annotations

from functools import cache

from hypothesis import strategies as st

from routing_dsl.criteria import REGISTRY

NAMES = ["_NA_", "WAREHOUSES", "STORES", "NEXT_DAY", "HIGH", "X", "a_b", "Low", "queue"]
# every field and sort the criteria registry declares, and one it does not
FIELDS = [*dict.fromkeys([*REGISTRY("order_filter"), *REGISTRY("inventory_condition")]),
          "unknown_field"]
COMPARISONS = ["==", "!=", "<", "<=", ">", ">="]
SORT_FIELDS = [*dict.fromkeys([*REGISTRY("order_sort"), *REGISTRY("inventory_sort")])]
SETTINGS = [sample.replace("UNIT", "mi") for c in REGISTRY("setting").values()
            for sample in c.samples]
# `active` with a window (either bound optional), and the statuses
STATUSES = ["", " draft", " archived", " active", ' active from "2026-11-27"',
            ' active until "2026-12-01T00:00"',
            ' active from "2026-11-27T06:00-05:00" until "2026-12-01"']


_SAMPLED: dict[tuple, st.SearchStrategy] = {}


def sampled(options) -> st.SearchStrategy:
    """st.sampled_from, one strategy object per distinct options: hypothesis validates a
    strategy the first time it draws from it, and rebuilding these on every draw was most of
    the generation time of the generated-program properties. Keyed by type and value (0, 0.0
    and False stay apart); options with unhashable (mutable) elements are not shared."""
    options = tuple(options)
    try:
        key = tuple((type(option), option) for option in options)
        hash(key)
    except TypeError:
        return st.sampled_from(options)
    if key not in _SAMPLED:
        _SAMPLED[key] = st.sampled_from(options)
    return _SAMPLED[key]


@cache
@st.composite
def spaces(draw) -> str:
    return draw(sampled([" ", "  ", "\n", "\n\n", " \n\t ", "\n\n\n  "]))


@cache
@st.composite
def gap(draw) -> str:
    """Whitespace, sometimes with a comment (which always ends its line)."""
    if draw(st.integers(0, 5)) == 0:
        text = draw(sampled(["note", "", "TODO: check # twice", "é ✓"]))
        return draw(spaces()) + f"# {text}\n" + draw(spaces())
    return draw(spaces())


def joined(draw, parts: list[str]) -> str:
    out = parts[0]
    for part in parts[1:]:
        out += draw(gap()) + part
    return out


@cache
@st.composite
def values(draw, depth: int = 0) -> str:
    choice = draw(st.integers(0, 4 if depth == 0 else 3))
    if choice == 0:
        return draw(sampled(NAMES))
    if choice == 1:
        return '"' + draw(sampled(["x", "A B", 'q\\"q', ""])) + '"'
    if choice == 2:
        number = draw(sampled(["1", "2.5", "-3", "40.00", "+7", "0"]))
        unit = draw(sampled(["", " mi", " km", " days", " day"]))
        return number + unit
    if choice == 3:
        return draw(sampled(NAMES))
    items = draw(st.lists(values(depth + 1), max_size=3))
    trailing = "," if items and draw(st.booleans()) else ""
    return "[" + ", ".join(items) + trailing + "]"


@cache
@st.composite
def conditions(draw) -> str:
    field = draw(sampled(FIELDS))
    form = draw(st.integers(0, 5))
    if form == 0:
        return f"{field} {draw(sampled(COMPARISONS))} {draw(values())}"
    if form == 1:
        return f"{field} in {draw(values())}"
    if form == 2:
        return f"{field} not in {draw(values())}"
    if form == 3:
        return f"{field} is null"
    if form == 4:
        return f"{field} is not null"
    return f"{field} within {draw(values())}"


@cache
@st.composite
def sorts(draw) -> str:
    keys = []
    for field in draw(st.lists(sampled(SORT_FIELDS), min_size=1, max_size=3)):
        key = field + draw(sampled(["", " asc", " desc"]))
        key += draw(sampled(["", " nulls first", " nulls last"]))
        keys.append(key)
    return "sort by " + ", ".join(keys)


@cache
@st.composite
def rule_bodies(draw) -> str:
    members = []
    for kind in draw(st.lists(sampled(["assign", "inventory", "sort", "unfilled"]),
                              max_size=4)):
        if kind == "assign":
            members.append("assign " + draw(sampled(["single", "partial", "other"])))
        elif kind == "inventory":
            inner = draw(st.lists(st.one_of(conditions(), sampled(SETTINGS), st.builds(
                lambda field, value: f"not {field} within {value}",
                sampled(FIELDS), values())), max_size=3))
            members.append(block("inventory", inner, draw))
        elif kind == "sort":
            members.append(draw(sorts()))
        else:
            inner = draw(st.lists(sampled([
                "next rule", "move to queue UNFILLABLE_PARKING", "move to queue",
                "auto_cancel after 5 days", "clear auto_cancel"]), max_size=3))
            members.append(block("when unfilled", inner, draw))
    return block("", members, draw).lstrip()


def block(header: str, members: list[str], draw) -> str:
    head = f"{header} {{" if header else "{"
    return joined(draw, [head] + members + ["}"])


@cache
@st.composite
def rules(draw) -> str:
    text = 'rule "' + draw(sampled(["Any", "Nearest warehouse", "r"])) + '"'
    text += draw(sampled(STATUSES))
    if draw(st.booleans()):
        text += " extends " + draw(sampled(["closest", "t"]))
        if draw(st.booleans()):
            return text
    return text + " " + draw(rule_bodies())


@cache
@st.composite
def routings(draw) -> str:
    members = []
    for kind in draw(st.lists(sampled(["filter", "sort", "rule", "optimize"]),
                              max_size=4)):
        if kind == "filter":
            members.append(block("filter", draw(st.lists(conditions(), max_size=3)), draw))
        elif kind == "optimize":  # settings are `name value`, each on its own line
            members.append(block("optimize", draw(st.lists(sampled([
                "mode report", "mode apply", "split_cost 4.00", "late_cost 2.5",
                "unfilled_penalty auto", "window 1500", "work_limit 200", "time_limit 60",
                "facilities_per_line 3", "facilities_per_line all",
                "colour blue", "window [1, 2]"]), max_size=3)), draw))
        elif kind == "sort":
            members.append(draw(sorts()))
        else:
            members.append(draw(rules()))
    status = draw(sampled(STATUSES))
    return block(f'routing "R{draw(st.integers(0, 3))}"{status}', members, draw)


@cache
@st.composite
def items(draw) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(sampled(["use std.hotwax", 'use "lib/x.route"', "use std.a.b"]))
    if kind == 1:
        return f"let {draw(sampled(NAMES))} = {draw(values())}"
    if kind == 2:
        entries = draw(st.lists(sampled(['A "first"', "B", 'C "x, y"']), min_size=1,
                                max_size=3))
        return "declare queue " + ", ".join(entries)
    if kind == 3:
        return "template t " + draw(rule_bodies())
    members = []
    if draw(st.booleans()):
        members.append('schedule "0 */15 * * * ?"' + draw(sampled(
            ["", ' in "America/New_York"', ' in "UTC" paused', " paused"])))
    members += draw(st.lists(routings(), max_size=2))
    return block('group "G" for store ' + draw(sampled(["STORE", '"S 1"'])), members,
                 draw)


@cache
@st.composite
def programs(draw) -> str:
    parts = draw(st.lists(items(), max_size=4))
    if not parts:
        return draw(sampled(["", "\n", "# only a comment\n"]))
    return draw(gap()).lstrip(" \t") + joined(draw, parts) + draw(sampled(["", "\n"]))
