"""The registry of diagnostic codes.

Codes are stable: tools, editors and CI configurations refer to them. ``docs/diagnostics.md``
is generated from this table (``python -m routing_dsl.errorcodes > docs/diagnostics.md``) and a
test keeps the two in sync. RT1xx are syntax, RT2xx names, RT3xx fields, types and units,
RT4xx structure, RT5xx the findings of `routing analyze` (routing_dsl.authoring.analysis).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    severity: Severity
    title: str
    description: str


_CODES = [
    # syntax
    ErrorCode("RT101", Severity.ERROR, "syntax error",
              "The parser met a token it did not expect. Recovery continues after it, so one run "
              "reports every syntax error."),
    ErrorCode("RT102", Severity.ERROR, "unexpected character",
              "A character that cannot start any token, such as `@` or an unterminated string."),
    ErrorCode("RT103", Severity.ERROR, "unclosed block",
              "A block's `{` is never closed: the file ends inside it, or a statement that "
              "belongs outside it starts first. Reported once, at the opening `{`, or at the end "
              "of the file when a statement is cut short there."),
    ErrorCode("RT199", Severity.INFO, "too many problems",
              "A file shows at most 200 problems; this line counts the rest. Fix the first "
              "ones (often one early mistake explains many) and check again."),
    # names
    ErrorCode("RT201", Severity.ERROR, "undefined name",
              "A name is neither a constant (`let`) nor an id declared in a catalog "
              "(`declare`, or a `use`d module). The hint suggests the closest known name."),
    ErrorCode("RT202", Severity.ERROR, "duplicate definition",
              "Two constants, templates, declarations, groups, routings of one group or rules of "
              "one routing share a name."),
    ErrorCode("RT203", Severity.ERROR, "unknown template",
              "`rule ... extends NAME` names no template in scope."),
    ErrorCode("RT204", Severity.ERROR, "module not found",
              "`use` names a stdlib module or a file that does not exist."),
    ErrorCode("RT205", Severity.ERROR, "import cycle",
              "Modules import each other in a cycle."),
    ErrorCode("RT206", Severity.ERROR, "name of the wrong kind",
              "An id declared as one kind (say a shipment method) is used where another kind "
              "(say a queue) is expected."),
    ErrorCode("RT207", Severity.ERROR, "unknown declaration kind",
              "`declare` accepts queue, sales_channel, shipment_method, priority, "
              "facility_group, category."),
    ErrorCode("RT208", Severity.WARNING, "unused constant",
              "A `let` constant of this file is never used."),
    ErrorCode("RT209", Severity.ERROR, "constant defined in terms of itself",
              "A `let` constant refers to itself, directly or through other constants."),
    # fields, operators, types, units
    ErrorCode("RT301", Severity.ERROR, "unknown order field",
              "A `filter` or routing `sort by` names a field that orders do not have. "
              "The hint names the closest field, and says so when the field exists at inventory "
              "level instead."),
    ErrorCode("RT302", Severity.ERROR, "unknown inventory field",
              "An `inventory` block or rule `sort by` names a field that facilities do not have."),
    ErrorCode("RT303", Severity.ERROR, "operator does not fit the field",
              "For example `distance in [...]`, or `<` on a queue."),
    ErrorCode("RT304", Severity.ERROR, "value of the wrong type",
              "For example a list where one id is expected, a number for a queue, or a nested list."),
    ErrorCode("RT305", Severity.ERROR, "missing or wrong unit",
              "Distances need `mi` or `km`; day counts need `days`; other numbers take no unit."),
    ErrorCode("RT306", Severity.ERROR, "days must be a whole number",
              "Promise-date cutoffs and auto-cancel delays are whole days."),
    ErrorCode("RT307", Severity.ERROR, "invalid value",
              "A value out of range: a negative distance or threshold, an empty id."),
    ErrorCode("RT308", Severity.ERROR, "invalid sort option",
              "`nulls first|last` on a sort field that is never missing."),
    ErrorCode("RT309", Severity.ERROR, "invalid assignment",
              "`assign` takes `single` or `partial`."),
    # structure
    ErrorCode("RT401", Severity.ERROR, "active routing has no active rule",
              "An active routing must have at least one active rule; HotWax fails such a run."),
    ErrorCode("RT402", Severity.WARNING, "rule can never run",
              "An earlier active rule moves every unfilled item to a queue, so no unit ever reaches "
              "this rule."),
    ErrorCode("RT403", Severity.ERROR, "facility_sequence sort without a facility group",
              "Sorting by `facility_sequence` needs a `facility_group ==` or `in` condition in the "
              "same rule: the sequence is read from the included groups."),
    ErrorCode("RT404", Severity.WARNING, "single assignment in an item-by-item routing",
              "A promise-date filter routes items one by one, so `assign single` only means each "
              "item ships whole from one facility. HotWax forces partial here."),
    ErrorCode("RT405", Severity.ERROR, "move to queue without a queue",
              "`move to queue` must name the queue the unfilled items go to."),
    ErrorCode("RT406", Severity.WARNING, "rule excludes every facility",
              "The rule includes and excludes the same facility group, or its conditions can never "
              "hold together, so it can never allocate."),
    ErrorCode("RT407", Severity.ERROR, "invalid cron expression",
              "The schedule is not a valid cron expression (5 fields, or Quartz style with seconds "
              "first and `?`)."),
    ErrorCode("RT408", Severity.ERROR, "unknown time zone",
              "The schedule's time zone is not an IANA zone such as `America/New_York`."),
    ErrorCode("RT409", Severity.ERROR, "clause given twice",
              "A rule or routing has two `assign`, `inventory`, `sort by`, `when unfilled` or "
              "`filter` clauses, or a group two schedules."),
    ErrorCode("RT410", Severity.ERROR, "conflicting actions",
              "`next rule` and `move to queue` in one `when unfilled` block."),
    ErrorCode("RT411", Severity.ERROR, "rule without assignment",
              "Every rule says `assign single` or `assign partial`, itself or through its template."),
    ErrorCode("RT412", Severity.WARNING, "redundant clause",
              "A sort field listed twice, a flag given twice, or `clear auto_cancel` together with "
              "`auto_cancel after` (clearing wins)."),
    ErrorCode("RT413", Severity.WARNING, "group has no active routing",
              "A group whose routings are all draft or archived does nothing when it runs."),
    ErrorCode("RT414", Severity.WARNING, "setting has no effect",
              "`keep_item_groups_together`, `only_if_all_items_available`, "
              "`shipment_threshold` and `split_cost` change nothing in an `assign single` rule, "
              "where one facility ships the whole unit or nothing; `split_cost` changes nothing "
              "without the sort it adds to (`shipping_cost` for an amount, `distance` for a "
              "distance)."),
    ErrorCode("RT415", Severity.ERROR, "invalid active window",
              "`active from \"...\" until \"...\"` takes a date (`\"2026-11-27\"`) or a date and "
              "time (`\"2026-11-27T08:00\"`, optionally with a UTC offset), and a window that "
              "ends after it starts."),
    ErrorCode("RT416", Severity.WARNING, "active window already ended",
              "The `until` of a routing's or rule's window is in the past (judged against the "
              "clock when the file is checked; routing itself judges against the snapshot's "
              "`now`): it will never run again."),
    ErrorCode("RT420", Severity.ERROR, "unknown optimize setting",
              "An `optimize` block names a setting it does not have. The settings are `mode`, "
              "`split_cost`, `late_cost`, `unfilled_penalty`, `window`, "
              "`facilities_per_line`, `work_limit` and `time_limit`; the hint names the closest."),
    ErrorCode("RT421", Severity.ERROR, "invalid optimize value",
              "An `optimize` setting got a value it does not take: `mode` takes `report` or "
              "`apply`, `unfilled_penalty` an amount or `auto`, `facilities_per_line` a number or `all`, the "
              "others a number."),
    # analysis (`routing analyze`)
    ErrorCode("RT501", Severity.WARNING, "rule is shadowed",
              "An earlier rule of the routing splits freely (`assign partial`, no safety stock, "
              "threshold, all-or-nothing, kits, `max_facilities`, active window or broken-style "
              "sort) over every facility this rule could use, and "
              "reaches at least its order limits: whatever this rule could take is taken first, "
              "so it never allocates."),
    ErrorCode("RT502", Severity.WARNING, "routing takes no order",
              "The routing's filter conditions on one field contradict one another (for example "
              "`queue == A` and `queue == B`, or `promise_date <= 1 days` and `> 2 days`), so no "
              "order can pass them."),
    ErrorCode("RT503", Severity.WARNING, "rule without an inventory condition",
              "An active rule with no facility_group, distance or safety-stock condition takes any "
              "facility of the product store, however far; usually a condition was forgotten."),
]

CODES: dict[str, ErrorCode] = {code.code: code for code in _CODES}


def render_markdown() -> str:
    """The text of docs/diagnostics.md."""
    lines = [
        "# Diagnostic codes",
        "",
        "Every problem `routing check`, the language server and the compiler report has a stable "
        "code. Each code has a failing example in `tests/golden/diagnostics/<code>.route`, and its "
        "expected output beside it.",
        "",
        "Generated from `routing_dsl/errorcodes.py`; regenerate with "
        "`python -m routing_dsl.errorcodes > docs/diagnostics.md`.",
        "",
        "| code | severity | title | meaning |",
        "|---|---|---|---|",
    ]
    for code in _CODES:
        lines.append(f"| {code.code} | {code.severity.value} | {code.title} | {code.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
