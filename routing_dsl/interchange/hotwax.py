"""HotWax Order Routing's group export (`GET /rest/s1/order-routing/groups/{id}/raw`) to a
`.route` file.

The export is the group's entity master: the group (product store, name, ServiceJob
schedule), its routings with their order filters and sorts (OrderFilterCondition), their rules
with inventory filters and sorts (OrderRoutingRuleInvCond) and actions. Field names, operators
and values are read as HotWax's engine reads them (../shared/reference/hotwax-semantics.md §2):
the operator is the enum code (`less-equals`), `in` values are comma lists, a NULL value turns
`equals` into `is null`, booleans are `Y`/`true`, sort names may carry ` desc`.

Everything is translated or reported: a value the language cannot say is a problem naming its
JSON path (`routings[0].rules[1].inventoryFilters[2].fieldName`), and nothing is written; a
value kept with a caveat (a schedule's time zone, which HotWax takes from its server) is a note.
Descriptions become `# description:` comments above what they describe, and the export reads
them back.

Before any of that, the export is checked against :class:`GroupExport`, the schema of what
HotWax's export holds (msgspec structs, declared once; the fuzzers generate exports from it):
a value of the wrong JSON type (a number for the cron expression, an object where an enum id
belongs) is a HotWaxSchemaError naming its JSON path and the expected type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import msgspec
from msgspec import Struct

from ..checker import Workspace
from ..criteria import REGISTRY
from ..formatter import format_module
from ..parser import keyword_terminals
from ..validation import RANGE, Real, Whole, in_range, not_unicode, problem
from ..vocabulary import ID_KINDS

OPERATORS = {"equals": "==", "=": "==", "": "==", "not-equals": "!=", "!=": "!=",
             "<>": "!=", "not-equal": "!=", "in": "in", "IN": "in", "not-in": "not in",
             "NOT IN": "not in", "less": "<", "less-than": "<", "<": "<",
             "less-equals": "<=", "<=": "<=", "greater": ">", "greater-than": ">", ">": ">",
             "greater-equals": ">=", ">=": ">=", "is-null": "is null",
             "is-not-null": "is not null"}
# HotWax's field names, as the criteria registry declares them (criteria without one are
# ours only: exporting them is a problem): order filters on ids (field -> (name, id kind)),
# order and inventory sorts (field -> name), inventory conditions (name -> field).
ORDER_FIELDS = {c.hotwax: (c.name, c.value) for c in REGISTRY("order_filter").values()
                if c.hotwax and c.value in ID_KINDS}
ORDER_SORTS = {c.hotwax: c.name for c in REGISTRY("order_sort").values() if c.hotwax}
INVENTORY_SORTS = {c.hotwax: c.name for c in REGISTRY("inventory_sort").values() if c.hotwax}
_READ_FIELDS = ", ".join(sorted([*ORDER_FIELDS, "promiseDaysCutoff"]))
_INVENTORY_NAMES = {c.name: c.hotwax for c in REGISTRY("inventory_condition").values()
                    if c.hotwax}
# statusId -> the status word; a routing's and a rule's codes differ (`RULE_DRAFT` on a
# routing is no status of a routing)
STATUS = {kind: {None: "", f"{kind}_ACTIVE": "", f"{kind}_DRAFT": " draft",
                 f"{kind}_ARCHIVED": " archived"} for kind in ("ROUTING", "RULE")}
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = set(keyword_terminals().values())


# ---- the export's schema ---------------------------------------------------------------------

Value = str | Whole | Real | None  # HotWax writes values as text; numbers are read as text too


class Schedule(Struct):
    """The group's ServiceJob."""

    cronExpression: str | None = None
    paused: str | bool | None = None
    jobName: str | None = None


class Condition(Struct):
    """OrderFilterCondition or OrderRoutingRuleInvCond: a filter or a sort."""

    conditionTypeEnumId: str | None = None
    fieldName: str | None = None
    operator: str | None = None
    fieldValue: Value = None
    sequenceNum: Whole | Real | None = None


class Action(Struct):
    """OrderRoutingRuleAction."""

    actionTypeEnumId: str | None = None
    actionValue: str | Whole | Real | bool | None = None


class Rule(Struct):
    """OrderRoutingRule."""

    routingRuleId: str | Whole | None = None
    ruleName: str | None = None
    description: str | None = None
    statusId: str | None = None
    sequenceNum: Whole | Real | None = None
    assignmentEnumId: str | None = None
    inventoryFilters: list[Condition] | None = None
    actions: list[Action] | None = None


class Routing(Struct):
    """OrderRouting."""

    orderRoutingId: str | Whole | None = None
    routingName: str | None = None
    description: str | None = None
    statusId: str | None = None
    sequenceNum: Whole | Real | None = None
    orderFilters: list[Condition] | None = None
    rules: list[Rule] | None = None


class GroupExport(Struct):
    """OrderRoutingGroup, as `GET /rest/s1/order-routing/groups/{id}/raw` returns it (fields
    HotWax adds that routing does not read, such as dates and sequence ids, are ignored)."""

    routingGroupId: str | Whole | None = None
    productStoreId: str | None = None
    groupName: str | None = None
    description: str | None = None
    schedule: Schedule | None = None
    routings: list[Routing] | None = None


class HotWaxSchemaError(ValueError):
    """The export does not have the shape of a HotWax group export: the message names the
    JSON path and the expected type."""


def check_export(document, name: str = "group") -> None:
    """Raise HotWaxSchemaError unless ``document`` fits :class:`GroupExport`."""
    if (where := not_unicode(document)) is not None:  # JSON's \ud800 escapes allow it
        raise HotWaxSchemaError(f"{name}: {where}: expected text, got a lone UTF-16 surrogate")
    try:
        msgspec.convert(document, GroupExport)
    except msgspec.ValidationError as error:
        path, what = problem(error, object_word="an object")
        raise HotWaxSchemaError(f"{name}: {path + ': ' if path else ''}{what}") from None


class HotWaxImportError(Exception):
    """The export cannot be translated: every problem, each naming its JSON path."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class _Translation:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    declared: dict[str, set[str]] = field(default_factory=dict)

    def ident(self, value: str, kind: str | None) -> str:
        """An id as the language writes it: bare (and declared) when it can be, else quoted."""
        if _BARE.fullmatch(value) and value not in _KEYWORDS:
            if kind is not None:
                self.declared.setdefault(kind, set()).add(value)
            return value
        return _quote(value)


def import_group(document, name: str = "group") -> tuple[str, list[str]]:
    """The formatted `.route` text of a HotWax group export, and notes. Raises
    HotWaxImportError with every problem when something cannot be translated."""
    t = _Translation()
    if not isinstance(document, dict):
        raise HotWaxImportError([f"{name}: expected a JSON object (a routing group)"])
    check_export(document, name)
    store = document.get("productStoreId")
    if not isinstance(store, str) or not store:
        t.problems.append(f"{name}: productStoreId: needed (the group's product store)")
        store = "STORE"
    title = _name(document, "groupName", "routingGroupId", "Imported group")
    body = []
    schedule = document.get("schedule")
    if isinstance(schedule, dict) and schedule.get("cronExpression"):
        paused = " paused" if str(schedule.get("paused", "N")).upper() in ("Y", "TRUE") else ""
        body.append(f"schedule {_quote(schedule['cronExpression'])}{paused}")
        t.notes.append(f"{name}: schedule: HotWax reads the cron in its server's time zone; "
                       "add `in \"Zone\"` to the schedule (UTC without it)")
    routings = _list(document.get("routings"), f"{name}: routings", t)
    for r_index, routing in _ordered(routings):
        body.append(_routing(routing, f"routings[{r_index}]", t))
    if t.problems:  # each names the file, then the JSON path inside it
        raise HotWaxImportError([p if p.startswith(f"{name}:") else f"{name}: {p}"
                                 for p in t.problems])
    declarations = [f"declare {kind} {', '.join(sorted(ids))}"
                    for kind, ids in sorted(t.declared.items())]
    text = "\n".join([f"# Imported from HotWax routing group "
                      f"{_comment(str(document.get('routingGroupId', '')))}", *declarations, "",
                      *_described(document),
                      f"group {_quote(str(title))} for store {t.ident(store, None)} {{",
                      *body, "}", ""])
    checked = Workspace().check_text(text, name="imported.route")
    errors = [d for d in checked.diagnostics if d.is_error]
    if errors:  # a translation the checker refuses: report it rather than write it
        raise HotWaxImportError([f"{name}: the translation does not check: {d.code} "
                                 f"{d.message}" for d in errors[:10]])
    return format_module(checked.parsed.module, checked.parsed.source), [
        n if n.startswith(f"{name}:") else f"{name}: {n}" for n in t.notes]


def _routing(routing: dict, where: str, t: _Translation) -> str:
    if not isinstance(routing, dict):
        t.problems.append(f"{where}: expected an object")
        return ""
    name = _name(routing, "routingName", "orderRoutingId", "Routing")
    status = _status(routing.get("statusId"), f"{where}.statusId", t, "ROUTING")
    filters, sorts = [], []
    for index, condition in _ordered(_list(routing.get("orderFilters"),
                                           f"{where}.orderFilters", t)):
        path = f"{where}.orderFilters[{index}]"
        kind = condition.get("conditionTypeEnumId")
        if kind == "ENTCT_SORT_BY":
            sort = _sort(condition.get("fieldName"), ORDER_SORTS, f"{path}.fieldName", t)
            if sort:
                sorts.append(sort)
        elif kind == "ENTCT_FILTER":
            text = _order_filter(condition, path, t)
            if text:
                filters.append(text)
        else:
            t.problems.append(f"{path}.conditionTypeEnumId: {kind!r} is neither ENTCT_FILTER "
                              "nor ENTCT_SORT_BY")
    lines = [*_described(routing), f"routing {_quote(str(name))}{status} {{"]
    if filters:
        lines += ["filter {", *filters, "}"]
    if sorts:
        lines.append("sort by " + ", ".join(sorts))
    for index, rule in _ordered(_list(routing.get("rules"), f"{where}.rules", t)):
        lines.append(_rule(rule, f"{where}.rules[{index}]", t))
    lines.append("}")
    return "\n".join(lines)


def _order_filter(condition: dict, path: str, t: _Translation) -> str | None:
    field_name = condition.get("fieldName")
    op = _operator(condition.get("operator"), f"{path}.operator", t)
    value = condition.get("fieldValue")
    if op is None:
        return None
    if field_name == "promiseDaysCutoff":
        if op in ("is null", "is not null"):
            return f"promise_date {op}"
        days = _number(value, f"{path}.fieldValue", t, whole=True)
        if op not in ("<", "<=", ">", ">=") or days is None:
            if days is not None:
                t.problems.append(f"{path}.operator: promise_date takes <, <=, > or >=")
            return None
        return f"promise_date {op} {days} days"
    mapped = ORDER_FIELDS.get(field_name)
    if mapped is None:
        t.problems.append(f"{path}.fieldName: unknown order filter {field_name!r}: HotWax's "
                          f"brokering query filters on {_READ_FIELDS} only (an order-tag "
                          "filter chosen in its UI is not applied by it); say it in the "
                          ".route file instead, e.g. `tags in [VIP]`")
        return None
    name, kind = mapped
    return f"{name} {_ids(op, value, kind, path, t)}"


def _rule(rule: dict, where: str, t: _Translation) -> str:
    if not isinstance(rule, dict):
        t.problems.append(f"{where}: expected an object")
        return ""
    name = _name(rule, "ruleName", "routingRuleId", "Rule")
    status = _status(rule.get("statusId"), f"{where}.statusId", t, "RULE")
    assign = {"ORA_SINGLE": "single", "ORA_MULTI": "partial", None: "single"}.get(
        rule.get("assignmentEnumId"))
    if assign is None:
        t.problems.append(f"{where}.assignmentEnumId: {rule.get('assignmentEnumId')!r} is "
                          "neither ORA_SINGLE nor ORA_MULTI")
    elif rule.get("assignmentEnumId") is None:
        t.notes.append(f"{where}.assignmentEnumId: missing; HotWax treats it as single")
    conditions, sorts = [], []
    filters = _ordered(_list(rule.get("inventoryFilters"), f"{where}.inventoryFilters", t))
    # the unit first (HotWax writes it as a separate filter): each distance keeps its place
    systems = [(f"{where}.inventoryFilters[{index}]", c.get("fieldValue")) for index, c in filters
               if c.get("conditionTypeEnumId") == "ENTCT_FILTER"
               and c.get("fieldName") == "measurementSystem"]
    unit = "mi"
    for path, value in systems:
        if str(value).upper() in ("METRIC", "MSMNT_METRIC"):
            unit = "km"
        elif str(value).upper() not in ("IMPERIAL", "MSMNT_IMPERIAL"):
            t.problems.append(f"{path}.fieldValue: measurement system {value!r} is neither "
                              "IMPERIAL nor METRIC")
    has_distance = any(c.get("fieldName") == "distance" and
                       c.get("conditionTypeEnumId") == "ENTCT_FILTER" for _, c in filters)
    if systems and not has_distance:
        t.notes.append(f"{systems[-1][0]}: a measurement system without a distance condition "
                       "changes no routing; results report distances in the file's unit")
    for index, condition in filters:
        path = f"{where}.inventoryFilters[{index}]"
        kind, field_name = condition.get("conditionTypeEnumId"), condition.get("fieldName")
        value = condition.get("fieldValue")
        if kind == "ENTCT_SORT_BY":
            sort = _sort(field_name, INVENTORY_SORTS, f"{path}.fieldName", t)
            if sort:
                sorts.append(sort)
            continue
        if kind != "ENTCT_FILTER":
            t.problems.append(f"{path}.conditionTypeEnumId: {kind!r} is neither ENTCT_FILTER "
                              "nor ENTCT_SORT_BY")
            continue
        if field_name == "facilityGroupId":
            op = _operator(condition.get("operator"), f"{path}.operator", t)
            if op is not None:
                if op not in ("==", "!=", "in", "not in"):
                    t.problems.append(f"{path}.operator: facility_group takes ==, !=, in or "
                                      "not in")
                else:
                    conditions.append(f"facility_group {_ids(op, value, 'facility_group', path, t)}")
        elif field_name == "distance":
            op = _operator(condition.get("operator"), f"{path}.operator", t)
            number = _number(value, f"{path}.fieldValue", t)
            if op is not None and number is not None:
                conditions.append(f"distance {op} {number} {unit}")
        elif field_name == "measurementSystem":
            continue  # read above: it is the unit of the distances
        elif field_name == "brokeringSafetyStock":
            op = _operator(condition.get("operator"), f"{path}.operator", t)
            number = _number(value, f"{path}.fieldValue", t)
            if op is not None and number is not None:
                conditions.append(f"brokering_safety_stock {op} {number}")
        elif field_name == "splitOrderItemGroup":
            if not _yes(value):
                conditions.append("keep_item_groups_together")
        elif field_name == "ignoreFacilityOrderLimit":
            if _yes(value):
                conditions.append("ignore_facility_order_limit")
        elif field_name == "brokerIfAllItemsAvailable":
            if _yes(value):
                conditions.append("only_if_all_items_available")
        elif field_name == "shipmentThreshold":
            number = _number(value, f"{path}.fieldValue", t)
            if number is not None and float(number) > 0:
                conditions.append(f"shipment_threshold {float(number):.2f}")
        else:
            t.problems.append(f"{path}.fieldName: unknown inventory filter {field_name!r}")
    lines = [*_described(rule), f"rule {_quote(str(name))}{status} {{",
             f"assign {assign or 'single'}"]
    if conditions:
        lines += ["inventory {", *conditions, "}"]
    if sorts:
        lines.append("sort by " + ", ".join(sorts))
    actions = _actions(rule.get("actions"), where, t)
    if actions:
        lines += ["when unfilled {", *actions, "}"]
    lines.append("}")
    return "\n".join(lines)


def _actions(actions, where: str, t: _Translation) -> list[str]:
    found: dict[str, tuple[str, object]] = {}
    for index, action in enumerate(_list(actions, f"{where}.actions", t)):
        path = f"{where}.actions[{index}]"
        kind, value = action.get("actionTypeEnumId"), action.get("actionValue")
        if value is None:
            t.notes.append(f"{path}: no actionValue; HotWax ignores the action")
            continue
        if kind in found:
            t.notes.append(f"{path}: a second {kind}; HotWax keeps the last")
        found[kind] = (path, value)
    lines = []
    clear = "ORA_RM_CANCEL_DATE" in found and _yes(found["ORA_RM_CANCEL_DATE"][1])
    if clear:
        lines.append("clear auto_cancel")
    if "ORA_AUTO_CANCEL_DAYS" in found:
        path, value = found["ORA_AUTO_CANCEL_DAYS"]
        days = _number(value, f"{path}.actionValue", t, whole=True)
        if days is not None and days < 0:  # a date in the past: the language refuses it too
            t.problems.append(f"{path}.actionValue: {_short(value)} days cannot be negative")
            days = None
        if clear:
            t.notes.append(f"{path}: clearing the auto-cancel date wins over setting it; "
                           "dropped")
        elif days is not None:
            lines.append(f"auto_cancel after {days} days")
    if "ORA_MV_TO_QUEUE" in found:
        path, value = found["ORA_MV_TO_QUEUE"]
        lines.append(f"move to queue {t.ident(str(value), 'queue')}")
    for kind, (path, _) in found.items():
        if kind not in ("ORA_RM_CANCEL_DATE", "ORA_AUTO_CANCEL_DAYS", "ORA_MV_TO_QUEUE",
                        "ORA_NEXT_RULE"):
            t.problems.append(f"{path}.actionTypeEnumId: unknown action {kind!r}")
    return lines


# ---- values -----------------------------------------------------------------------------------

def _list(value, where: str, t: _Translation) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        t.problems.append(f"{where}: expected a list of objects")
        return []
    return value


def _ordered(items: list) -> list[tuple[int, dict]]:
    """Items with their positions, in HotWax's order: sequenceNum (missing last), then as
    given."""
    return sorted(enumerate(items), key=lambda pair: (
        pair[1].get("sequenceNum") is None,
        pair[1].get("sequenceNum") if isinstance(pair[1].get("sequenceNum"), (int, float))
        else 0))


def _status(value, where: str, t: _Translation, kind: str) -> str:
    if value not in STATUS[kind]:
        t.problems.append(f"{where}: unknown status {value!r}")
        return ""
    return STATUS[kind][value]


def _operator(value, where: str, t: _Translation) -> str | None:
    op = OPERATORS.get("" if value is None else str(value).strip())
    if op is None:
        t.problems.append(f"{where}: operator {value!r} has no counterpart (the language has "
                          "==, !=, <, <=, >, >=, in, not in, is null, is not null)")
    return op


def _ids(op: str, value, kind: str, path: str, t: _Translation) -> str:
    if op in ("is null", "is not null"):
        return op
    if value is None:  # HotWax: a NULL value turns equals/in into IS NULL, the others NOT NULL
        return "is null" if op in ("==", "in") else "is not null"
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    if not parts:
        t.problems.append(f"{path}.fieldValue: empty")
        return op
    names = [t.ident(p, kind) for p in parts]
    if op in ("in", "not in"):
        return f"{op} [{', '.join(names)}]"
    if len(names) > 1:
        t.problems.append(f"{path}.fieldValue: {value!r} lists several values for "
                          f"`{op}`; HotWax would compare the whole text")
    return f"{op} {names[0]}"


def _number(value, where: str, t: _Translation, whole: bool = False):
    try:
        number = float(str(value).strip())
    except ValueError:
        t.problems.append(f"{where}: {value!r} is not a number")
        return None
    if not in_range(number):
        t.problems.append(f"{where}: {_short(value)} is outside the supported range ({RANGE})")
        return None
    if whole and not number.is_integer():
        t.problems.append(f"{where}: {value!r} is not a whole number")
        return None
    return int(number) if number.is_integer() else number


def _sort(value, names: dict, where: str, t: _Translation) -> str | None:
    words = str(value or "").split()
    if not words or words[0] not in names or len(words) > 2 or (
            len(words) == 2 and words[1].lower() not in ("asc", "desc")):
        t.problems.append(f"{where}: unknown sort {value!r} (known: {', '.join(names)})")
        return None
    direction = " desc" if len(words) == 2 and words[1].lower() == "desc" else ""
    return names[words[0]] + direction


def _yes(value) -> bool:
    return str(value).strip().lower() in ("y", "true")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    return "".join(c for c in text if c.isprintable())[:80]


def _name(entity: dict, name: str, id_key: str, default: str) -> str:
    """What a group, routing or rule is called: its name, else its id, else a default (the
    import and `canonical` read a missing name alike)."""
    return str(entity.get(name) or entity.get(id_key) or default)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


DESCRIPTION = "# description: "


def _described(entity: dict) -> list[str]:
    """A description as comment lines above what it describes (the language has no
    description of its own; the export reads these lines back)."""
    text = entity.get("description")
    if not isinstance(text, str) or not text.strip():
        return []
    return [DESCRIPTION + "".join(c if c.isprintable() else " " for c in line).rstrip()
            for line in text.strip().splitlines()]


def _description_above(where) -> str | None:
    """The `# description:` lines right above the line of ``where`` (a group, routing or rule
    name), as the import wrote them."""
    if where is None:
        return None
    text = where.source.text
    lines = text[:text.rfind("\n", 0, where.span.start) + 1].splitlines()
    found = []
    for line in reversed(lines):
        stripped = line.strip()
        if not stripped.startswith(DESCRIPTION.strip()):
            break
        found.append(stripped[len(DESCRIPTION.strip()):].strip())
    return "\n".join(reversed(found)) or None


# ---- export -------------------------------------------------------------------------------------

_CODES = {"==": "equals", "!=": "not-equals", "<": "less", "<=": "less-equals", ">": "greater",
          ">=": "greater-equals", "in": "in", "not in": "not-in", "is null": "is-null",
          "is not null": "is-not-null"}
_ORDER_NAMES = {name: hotwax for hotwax, (name, _) in ORDER_FIELDS.items()}
_ORDER_SORT_NAMES = {v: k for k, v in ORDER_SORTS.items()}
_INVENTORY_SORT_NAMES = {v: k for k, v in INVENTORY_SORTS.items()}
_STATUS_CODES = {"active": "ACTIVE", "draft": "DRAFT", "archived": "ARCHIVED"}
# What the language says that HotWax's engine cannot hold, and why, as each criterion notes it
# (rejection queues, `queue == REJECTED_ITM_PARKING`, are plain queue filters and export).
_NOT_IN_HOTWAX = {c.name: c.extra["hotwax_note"] for c in REGISTRY.all()
                  if "hotwax_note" in c.extra}


def _window_problem(entity, what: str, problems: list[str]) -> None:
    if entity.active_from is not None or entity.active_until is not None:
        problems.append(f"{entity.where.label()}: HotWax has no effective dates on a {what} "
                        "(`active from ... until ...`): its status is switched by hand")


class HotWaxExportError(Exception):
    """Something the language says that HotWax cannot (each problem names where)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def export_group(group) -> dict:
    """A checked group (routing_dsl.checked.CheckedGroup) as HotWax's group export, without
    the database ids HotWax assigns. Raises HotWaxExportError listing what HotWax cannot hold
    (`nulls first`, a time zone other than the server's is only noted: see import)."""
    problems: list[str] = []
    document = {"productStoreId": group.product_store, "groupName": group.name}
    if (description := _description_above(group.where)) is not None:
        document["description"] = description
    if group.cron:
        document["schedule"] = {"cronExpression": group.cron,
                                "paused": "Y" if group.paused else "N"}
    document["routings"] = [_export_routing(r, k, problems)
                            for k, r in enumerate(group.routings, start=1)]
    if problems:
        raise HotWaxExportError(problems)
    return document


def _export_routing(routing, sequence: int, problems: list[str]) -> dict:
    filters = []
    _window_problem(routing, "routing", problems)
    for condition in routing.filters:
        if condition.field in _NOT_IN_HOTWAX:
            problems.append(f"{_where(condition, routing)}: {_NOT_IN_HOTWAX[condition.field]}")
            continue
        entry = {"conditionTypeEnumId": "ENTCT_FILTER",
                 "fieldName": "promiseDaysCutoff" if condition.field == "promise_date"
                 else _ORDER_NAMES[condition.field], "operator": _CODES[condition.op]}
        value = _export_value(condition)
        if value is not None:
            entry["fieldValue"] = value
        filters.append(entry)
    filters += [_export_sort(key, _ORDER_SORT_NAMES, problems) for key in routing.sorts]
    for k, entry in enumerate(filters, start=1):
        entry["sequenceNum"] = k
    described = _description_above(routing.where)
    return {"routingName": routing.name, **({"description": described} if described else {}),
            "statusId": f"ROUTING_{_STATUS_CODES[routing.status]}", "sequenceNum": sequence,
            "orderFilters": filters,
            "rules": [_export_rule(rule, k, problems)
                      for k, rule in enumerate(routing.rules, start=1)]}


_SETTING_VALUES = {  # setting -> its HotWax value when the setting is written
    "keep_item_groups_together": lambda rule: "N",
    "ignore_facility_order_limit": lambda rule: "Y",
    "only_if_all_items_available": lambda rule: "Y",
    "shipment_threshold": lambda rule: _plain(rule.shipment_threshold),
}
_SETTINGS = {name: (REGISTRY("setting")[name].hotwax, value)
             for name, value in _SETTING_VALUES.items()}


def _export_rule(rule, sequence: int, problems: list[str]) -> dict:
    placed = []  # (where it was written, entry): filters and settings keep the file's order
    _window_problem(rule, "rule", problems)
    if rule.max_facilities is not None:
        problems.append(f"{_where(None, rule)}: {_NOT_IN_HOTWAX['max_facilities']}")
    for condition in rule.conditions:
        if condition.field in _NOT_IN_HOTWAX:
            problems.append(f"{_where(condition, rule)}: {_NOT_IN_HOTWAX[condition.field]}")
            continue
        name = _INVENTORY_NAMES.get(condition.field)
        if name is None:  # shipping cost and delivery dates: ours, not HotWax's
            problems.append(f"{_where(condition, rule)}: HotWax has no `{condition.field}` "
                            "condition")
            continue
        placed.append((condition.where, {
            "conditionTypeEnumId": "ENTCT_FILTER", "fieldName": name,
            "operator": _CODES[condition.op], "fieldValue": _export_value(condition)}))
    written = dict(rule.settings_where)
    for setting, (name, value) in _SETTINGS.items():
        if getattr(rule, setting):
            placed.append((written.get(setting), _setting(name, value(rule))))
    if rule.split_cost is not None:
        problems.append(f"{_where(None, rule)}: HotWax has no `split_cost` setting")
    placed.sort(key=lambda pair: _position(pair[0], rule))
    filters = [entry for _, entry in placed]
    if rule.distance_unit:  # right after the first distance, as HotWax's UI writes it
        at = next(k for k, e in enumerate(filters) if e["fieldName"] == "distance")
        filters.insert(at + 1, _setting("measurementSystem",
                                        "METRIC" if rule.distance_unit == "km" else "IMPERIAL"))
    filters += [_export_sort(key, _INVENTORY_SORT_NAMES, problems) for key in rule.sorts]
    for k, entry in enumerate(filters, start=1):
        entry["sequenceNum"] = k
    actions = []
    if rule.move_to_queue:
        actions.append({"actionTypeEnumId": "ORA_MV_TO_QUEUE", "actionValue": rule.move_to_queue})
    if rule.auto_cancel_days is not None:
        actions.append({"actionTypeEnumId": "ORA_AUTO_CANCEL_DAYS",
                        "actionValue": str(rule.auto_cancel_days)})
    if rule.clear_auto_cancel:
        actions.append({"actionTypeEnumId": "ORA_RM_CANCEL_DATE", "actionValue": "true"})
    described = _description_above(rule.where)
    return {"ruleName": rule.name, **({"description": described} if described else {}),
            "statusId": f"RULE_{_STATUS_CODES[rule.status]}", "sequenceNum": sequence,
            "assignmentEnumId": "ORA_SINGLE" if rule.assign == "single" else "ORA_MULTI",
            "inventoryFilters": filters, "actions": actions}


def _position(where, rule) -> tuple[int, int]:
    """Sort key: what a template brought first (the checker merges it first), then the rule's
    own clauses as written."""
    if where is None or where.source is not rule.where.source:
        return (0, 0)
    return (1, where.span.start)


def _export_value(condition) -> str | None:
    if condition.op in ("is null", "is not null"):
        return None
    if condition.ids:
        return ",".join(condition.ids)
    return _plain(condition.number)


def _where(condition, rule) -> str:
    where = condition.where if condition is not None and condition.where else rule.where
    return where.label()


def _export_sort(key, names: dict, problems: list[str]) -> dict:
    if key.field not in names:
        where = key.where.label() if key.where else key.field
        problems.append(f"{where}: HotWax cannot sort by `{key.field}`")
        return {"conditionTypeEnumId": "ENTCT_SORT_BY", "fieldName": key.field}
    if key.nulls_first:
        where = key.where.label() if key.where else key.field
        problems.append(f"{where}: HotWax cannot sort `{key.field}` with nulls first")
    return {"conditionTypeEnumId": "ENTCT_SORT_BY",
            "fieldName": names[key.field] + (" desc" if key.descending else "")}


def _setting(name: str, value: str) -> dict:
    return {"conditionTypeEnumId": "ENTCT_FILTER", "fieldName": name, "fieldValue": value}


def _plain(number) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def canonical(document: dict) -> dict:
    """What a group export means, without what does not change routing: HotWax's ids and
    dates, descriptions, the order lists happen to be in (sequence numbers decide),
    spelling (`IN` and `in`, `Y` and `true`, spaces in comma lists), settings at their
    defaults, actions HotWax ignores. Two exports with the same canonical form route alike."""
    def filters(items) -> dict:
        # conditions and settings all hold together (their order does not matter); sorts do
        conditions, settings, sorts = [], [], []
        for item in sorted(items or [], key=lambda i: i.get("sequenceNum") or 0):
            kind, name = item.get("conditionTypeEnumId"), item.get("fieldName")
            value = item.get("fieldValue")
            if kind == "ENTCT_SORT_BY":
                words = str(name).split()
                sorts.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
            elif name == "splitOrderItemGroup":
                if not _yes(value):
                    settings.append((name, False))
            elif name in ("ignoreFacilityOrderLimit", "brokerIfAllItemsAvailable"):
                if _yes(value):
                    settings.append((name, True))
            elif name == "measurementSystem":
                if str(value).upper() in ("METRIC", "MSMNT_METRIC"):
                    settings.append((name, "METRIC"))
            elif name == "shipmentThreshold":
                if float(value) > 0:
                    settings.append((name, float(value)))
            else:
                op = OPERATORS.get("" if item.get("operator") is None else str(item["operator"]))
                if value is not None and op not in ("is null", "is not null"):
                    if name in ("distance", "brokeringSafetyStock", "promiseDaysCutoff"):
                        value = float(value)
                    else:
                        value = tuple(p.strip() for p in str(value).split(",") if p.strip())
                elif op in ("==", "in"):
                    op, value = "is null", None
                elif op in ("!=", "not in"):
                    op, value = "is not null", None
                conditions.append((name, op, value))
        return {"conditions": sorted(conditions, key=repr), "settings": sorted(settings),
                "sorts": sorts}

    def actions(items) -> list:
        found = {}
        for item in items or []:
            if item.get("actionValue") is not None and item["actionTypeEnumId"] != "ORA_NEXT_RULE":
                found[item["actionTypeEnumId"]] = str(item["actionValue"]).lower()
        if "ORA_RM_CANCEL_DATE" in found:
            if found["ORA_RM_CANCEL_DATE"] == "true":
                found.pop("ORA_AUTO_CANCEL_DAYS", None)
            else:
                del found["ORA_RM_CANCEL_DATE"]
        return sorted(found.items())

    schedule = document.get("schedule") or {}
    return {
        "productStoreId": document.get("productStoreId"),
        "groupName": _name(document, "groupName", "routingGroupId", "Imported group"),
        "schedule": (schedule.get("cronExpression"), _yes(schedule.get("paused", "N")))
        if schedule.get("cronExpression") else None,
        "routings": [{
            "routingName": _name(routing, "routingName", "orderRoutingId", "Routing"),
            "statusId": routing.get("statusId") or "ROUTING_ACTIVE",
            "orderFilters": filters(routing.get("orderFilters")),
            "rules": [{
                "ruleName": _name(rule, "ruleName", "routingRuleId", "Rule"),
                "statusId": rule.get("statusId") or "RULE_ACTIVE",
                "assignmentEnumId": rule.get("assignmentEnumId") or "ORA_SINGLE",
                "inventoryFilters": filters(rule.get("inventoryFilters")),
                "actions": actions(rule.get("actions")),
            } for _, rule in _ordered(routing.get("rules") or [])],
        } for _, routing in _ordered(document.get("routings") or [])],
    }
