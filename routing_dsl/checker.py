"""Checker: AST -> checked program (:mod:`routing_dsl.checked`) plus diagnostics.

It resolves names (constants, catalog ids, templates, imported modules), checks each field's
operators, value types and units, and the structure of groups, routings and rules. Every
problem becomes a diagnostic; checking never stops at the first one. It also records where
each name is defined and used, for the language server.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from . import nodes as n
from . import vocabulary as v
from .checked import (CheckedCondition, CheckedGroup, CheckedOptimize, CheckedProgram,
                      CheckedRouting, CheckedRule, CheckedSortKey, Where)
from .cronsyntax import plainly_valid
from .diagnostics import Diagnostic, Fix, sort_diagnostics
from .optimize.settings import SETTINGS as OPTIMIZE_SETTINGS
from .optimize.settings import UNSET_WORDS as OPTIMIZE_UNSET
from .loader import ImportProblem, Loader, ParsedModule, SourceError, project_root, stdlib_modules
from .source import SourceFile, Span
from .formatter import value as formatted
from .suggest import did_you_mean


# ---- symbols ----------------------------------------------------------------------------------

@dataclass(eq=False)
class Definition:
    """Something a name can refer to: a constant, a template, a declared id or a module."""

    kind: str  # "constant" | "template" | "declared" | "module"
    name: str
    where: Where
    node: n.Node | None = None
    id_kind: str | None = None
    doc: str | None = None
    scope: Scope | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    where: Where
    definition: Definition


@dataclass(eq=False)
class Scope:
    source: SourceFile
    constants: dict[str, Definition] = field(default_factory=dict)
    templates: dict[str, Definition] = field(default_factory=dict)
    catalog: dict[str, list[Definition]] = field(default_factory=dict)
    priority_order: list[str] = field(default_factory=list)

    def merge_from(self, other: Scope) -> None:
        """Import ``other``'s own names (local definitions added later take precedence)."""
        for name, definition in other.constants.items():
            self.constants.setdefault(name, definition)
        for name, definition in other.templates.items():
            self.templates.setdefault(name, definition)
        for name, definitions in other.catalog.items():
            mine = self.catalog.setdefault(name, [])
            mine.extend(d for d in definitions if d not in mine)
        for name in other.priority_order:
            if name not in self.priority_order:
                self.priority_order.append(name)

    def all_names(self) -> list[str]:
        return list(self.constants) + list(self.catalog)


# ---- resolved values ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RId:
    value: str
    kinds: frozenset[str] | None  # None: a quoted literal, fits any kind
    span: Span
    via: str | None = None  # the constant it came through


@dataclass(frozen=True, slots=True)
class RNumber:
    value: Decimal
    unit: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class RList:
    items: tuple
    span: Span


@dataclass(frozen=True, slots=True)
class RMissing:
    span: Span


@dataclass
class CheckResult:
    """Everything known about one checked file."""

    parsed: ParsedModule
    diagnostics: list[Diagnostic]
    program: CheckedProgram
    scope: Scope
    definitions: list[Definition]
    references: list[Reference]

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


# ---- the checker ----------------------------------------------------------------------------------

MAX_IMPORT_DEPTH = 32
MAX_VERSION = 100  # characters of a `version` label


class Workspace:
    """Checks files, sharing parsed and checked imports between them."""

    def __init__(self, loader: Loader | None = None, roots: tuple[Path, ...] = (),
                 now: datetime | None = None):
        self.loader = loader or Loader()
        self.roots = tuple(r.resolve() for r in roots)  # an editor's workspace folders
        # the moment an active window is judged ended against (RT416): the clock by default
        self.now = now
        self._results: dict[Path, CheckResult] = {}
        self._in_progress: list[Path] = []
        self.root = Path.cwd()  # the project root of the file being checked (see project_root)

    def check_path(self, path: Path, name: str | None = None) -> CheckResult:
        """Check a file on disk (or an open buffer). Raises SourceError when unreadable."""
        if not self._in_progress:
            self.root = project_root(path.resolve(), self.roots)
        parsed = self.loader.load(path, name)
        return self._check(parsed)

    def check_text(self, text: str, name: str = "<input>", path: Path | None = None) -> CheckResult:
        if not self._in_progress:
            self.root = project_root(path.resolve(), self.roots) if path else Path.cwd()
        parsed = Loader.parse_text(text, name, path)
        return self._check(parsed)

    def _check(self, parsed: ParsedModule) -> CheckResult:
        key = parsed.path
        if key is not None and key in self._results:
            return self._results[key]
        if key is not None:
            self._in_progress.append(key)
        try:
            result = _ModuleChecker(self, parsed).run()
        finally:
            if key is not None:
                self._in_progress.pop()
        if key is not None:
            self._results[key] = result
        return result

    def modules(self) -> list[CheckResult]:
        """Every file on disk checked so far (an entry file and the modules it imported,
        nested ones included), in the order their checks finished."""
        return list(self._results.values())

    def import_module(self, path: Path) -> CheckResult | None:
        """The checked module at ``path``, or None when importing it would close a cycle."""
        if path in self._in_progress:
            return None
        return self.check_path(path)


class _ModuleChecker:
    def __init__(self, workspace: Workspace, parsed: ParsedModule):
        self.workspace = workspace
        self.parsed = parsed
        self.source = parsed.source
        self.scope = Scope(parsed.source)
        self.diagnostics: list[Diagnostic] = list(parsed.syntax_diagnostics)
        self.definitions: list[Definition] = []
        self.references: list[Reference] = []
        self._constant_values: dict[Definition, object] = {}
        self._resolving: list[Definition] = []
        self._used_constants: set[Definition] = set()
        self._imported: list[Diagnostic] = []
        self._syntax_starts = sorted(d.span.start for d in parsed.syntax_diagnostics)
        self._group_zone: ZoneInfo | None = None  # the schedule's zone of the group checked

    # diagnostics
    def error(self, code: str, message: str, span: Span, hint: str | None = None,
              fixes: tuple[Fix, ...] = (), source: SourceFile | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(code, message, source or self.source, span, hint=hint, fixes=fixes))

    def _syntax_error_in(self, span: Span) -> bool:
        """A syntax error inside ``span`` already explains what the block seems to lack."""
        starts = self._syntax_starts
        index = bisect.bisect_left(starts, span.start)
        return index < len(starts) and starts[index] <= span.end

    def where(self, span: Span) -> Where:
        return Where(self.source, span)

    def suggest(self, code: str, message: str, span: Span, word: str, candidates,
                fallback_hint: str | None = None) -> None:
        guess = did_you_mean(word, candidates)
        if guess:
            self.error(code, message, span, hint=f"did you mean `{guess}`?",
                       fixes=(Fix(f"Change to `{guess}`", span, guess),))
        else:
            self.error(code, message, span, hint=fallback_hint)

    # ---- pass 1: the module's own names ----
    def run(self) -> CheckResult:
        module = self.parsed.module
        for item in module.items:
            if isinstance(item, n.Use):
                self._use(item)
        for item in module.items:
            if isinstance(item, n.Declare):
                self._declare(item)
        for item in module.items:
            if isinstance(item, n.Let):
                self._define(item.name, "constant", self.scope.constants, item)
            elif isinstance(item, n.Template):
                self._define(item.name, "template", self.scope.templates, item)
        for item in module.items:
            if isinstance(item, n.Let):
                self._constant(self.scope.constants.get(item.name.name))
            elif isinstance(item, n.Template):
                self._rule_parts(item.body, self.scope)
        groups = []
        seen_groups: dict[str, n.Group] = {}
        for item in module.items:
            if isinstance(item, n.Group):
                if item.name.value in seen_groups:
                    self.error("RT202", f"duplicate group `{item.name.value}`", item.name.span,
                               hint="group names are unique within a file")
                seen_groups[item.name.value] = item
                groups.append(self._group(item))
        for definition in self.scope.constants.values():
            if (definition.where.source is self.source and definition not in self._used_constants
                    and not self._is_library()):
                self.error("RT208", f"constant `{definition.name}` is never used",
                           definition.where.span)
        program = CheckedProgram(self.source, tuple(groups), tuple(self.scope.priority_order),
                                 self._version(module))
        diagnostics = sort_diagnostics(self.diagnostics + self._imported)
        return CheckResult(self.parsed, diagnostics, program, self.scope, self.definitions,
                           self.references)

    def _version(self, module: n.Module) -> str | None:
        """The file's own `version` label (an imported module's labels nothing)."""
        first: n.Version | None = None
        label = None
        for item in module.items:
            if not isinstance(item, n.Version):
                continue
            if first is not None:
                self.error("RT202", "duplicate `version`", item.span,
                           hint=f"a file has one version, first given at "
                                f"{self.where(first.span).label()}")
                continue
            first, label = item, item.label.value
            if not label.strip() or label != label.strip() or len(label) > MAX_VERSION:
                self.error("RT307", f"invalid version label \"{label[:40]}\"", item.label.span,
                           hint=f"a label of 1 to {MAX_VERSION} characters, without leading "
                                "or trailing spaces, such as \"2026-11-bf\"")
                label = None
        return label

    def _is_library(self) -> bool:
        """A module with no groups is a library: its constants exist to be imported."""
        return not any(isinstance(i, n.Group) for i in self.parsed.module.items)

    def _use(self, use: n.Use) -> None:
        if len(self.workspace._in_progress) >= MAX_IMPORT_DEPTH:
            self.error("RT204", f"cannot import `{use.target}`: imports nest more than "
                       f"{MAX_IMPORT_DEPTH} modules deep", use.target_span,
                       hint="import shared modules from the entry file instead of in a chain")
            return
        try:
            path = self.workspace.loader.resolve(use, self.parsed.path, self.workspace.root)
        except ImportProblem as problem:
            self.error("RT204", f"cannot import {problem}", use.target_span, hint=problem.hint)
            return
        if path is None:
            if use.is_path:
                hint = "paths are relative to the importing file"
            else:
                guess = did_you_mean(use.target, stdlib_modules())
                hint = (f"did you mean `{guess}`?" if guess else
                        "stdlib modules: " + ", ".join(stdlib_modules()))
            self.error("RT204", f"module `{use.target}` not found", use.target_span, hint=hint)
            return
        try:
            imported = self.workspace.import_module(path)
        except SourceError as error:
            self.error("RT204", f"cannot read module `{use.target}`: {error}", use.target_span)
            return
        if imported is None:
            self.error("RT205", f"import cycle through `{use.target}`", use.target_span,
                       hint="move the shared declarations into a module both can use")
            return
        self._imported.extend(imported.diagnostics)
        self.scope.merge_from(imported.scope)
        definition = Definition("module", use.target, Where(imported.parsed.source, Span(0, 0)))
        self.references.append(Reference(use.target, self.where(use.target_span), definition))

    def _declare(self, declare: n.Declare) -> None:
        kind = declare.kind.name
        if kind not in v.ID_KINDS:
            self.suggest("RT207", f"unknown declaration kind `{kind}`", declare.kind.span, kind,
                         v.ID_KINDS, fallback_hint="kinds: " + ", ".join(v.ID_KINDS))
            return
        for entry in declare.entries:
            name = entry.name.name
            existing = self.scope.catalog.setdefault(name, [])
            clash = [d for d in existing if d.id_kind == kind and d.where.source is self.source]
            if clash:
                self.error("RT202", f"`{name}` is already declared as a {kind}",
                           entry.name.span, hint=f"first declared at {clash[0].where.label()}")
                continue
            if any(d.id_kind == kind for d in existing):
                continue  # the same id declared again by an imported module: harmless
            definition = Definition("declared", name, self.where(entry.name.span), entry,
                                    id_kind=kind, doc=entry.doc, scope=self.scope)
            existing.append(definition)
            self.definitions.append(definition)
            if kind == "priority" and name not in self.scope.priority_order:
                self.scope.priority_order.append(name)

    def _define(self, ident: n.Ident, kind: str, table: dict[str, Definition], node) -> None:
        previous = table.get(ident.name)
        if previous is not None and previous.where.source is self.source:
            self.error("RT202", f"duplicate {kind} `{ident.name}`", ident.span,
                       hint=f"first defined at {previous.where.label()}")
            return
        definition = Definition(kind, ident.name, self.where(ident.span), node, scope=self.scope)
        table[ident.name] = definition
        self.definitions.append(definition)

    # ---- values ----
    def _constant(self, definition: Definition | None):
        if definition is None:
            return RMissing(Span(0, 0))
        if definition in self._constant_values:
            return self._constant_values[definition]
        if definition.where.source is not self.source:
            return self._foreign_constant(definition)
        if definition in self._resolving:
            self.error("RT209", f"constant `{definition.name}` is defined in terms of itself",
                       definition.where.span)
            return RMissing(definition.where.span)
        self._resolving.append(definition)
        try:
            value = self._resolve(definition.node.value, definition.scope)
        finally:
            self._resolving.pop()
        self._constant_values[definition] = value
        return value

    def _foreign_constant(self, definition: Definition):
        """A constant of an imported module, resolved in that module's own scope."""
        value = self._detached(definition.scope)._resolve(definition.node.value, definition.scope)
        self._constant_values[definition] = value
        return value

    def _resolve(self, value: n.Value, scope: Scope):
        """A value with names looked up; problems with undefined names are reported here."""
        if isinstance(value, n.NameRef):
            constant = scope.constants.get(value.name)
            if constant is not None:
                self._used_constants.add(constant)
                if scope is self.scope:
                    self.references.append(Reference(value.name, self.where(value.span), constant))
                resolved = self._constant(constant)
                return _relocate(resolved, value.span, value.name)
            declared = scope.catalog.get(value.name)
            if declared:
                if scope is self.scope:
                    for definition in declared:
                        self.references.append(
                            Reference(value.name, self.where(value.span), definition))
                return RId(value.name, frozenset(d.id_kind for d in declared), value.span)
            if scope is self.scope:
                self.suggest("RT201", f"undefined name `{value.name}`", value.span, value.name,
                             scope.all_names(),
                             fallback_hint="declare it (`declare queue ...`), define it with "
                                           "`let`, `use` a module that has it, or quote it to "
                                           "use it as a literal id")
            return RMissing(value.span)
        if isinstance(value, n.StringLit):
            return RId(value.value, None, value.span)
        if isinstance(value, n.NumberLit):
            try:
                return RNumber(value.value, value.unit, value.span)
            except InvalidOperation:
                return RMissing(value.span)
        if isinstance(value, n.ListLit):
            return RList(tuple(self._resolve(item, scope) for item in value.items), value.span)
        return RMissing(value.span)

    # ---- conditions ----
    def _condition(self, condition: n.Condition, level: str, scope: Scope,
                   source: SourceFile) -> CheckedCondition | None:
        name = condition.field.name
        spec = v.field_spec(name, level)
        if spec is None:
            self._unknown_field(condition.field, level, source)
            return None
        op = condition.op
        if op not in spec.operators:
            ops = ", ".join(f"`{o}`" for o in spec.operators)
            self.error("RT303", f"operator `{op}` does not fit `{name}`", condition.span,
                       hint=f"`{name}` takes {ops}", source=source)
            return None
        where = Where(source, condition.span)
        if condition.value is None:
            return CheckedCondition(name, op, where=where)
        if spec.value == "promise":
            if not (isinstance(condition.value, n.NameRef)
                    and condition.value.name == "promise_date"):
                self.error("RT304", f"`{name}` compares with `promise_date`",
                           condition.value.span, hint=f"write `{spec.example}`", source=source)
                return None
            return CheckedCondition(name, op, ids=("promise_date",), where=where)
        value = self._resolve(condition.value, scope)
        if isinstance(value, RMissing):
            return None
        if spec.value in v.ID_KINDS:
            ids = self._ids(value, spec, op, source)
            return None if ids is None else CheckedCondition(name, op, ids=ids, where=where)
        number = self._measure(value, spec.value, name, source)
        if number is None:
            return None
        unit = value.unit if spec.value == "distance" else None
        return CheckedCondition(name, op, number=number, unit=unit, where=where)

    def _unknown_field(self, ident: n.Ident, level: str, source: SourceFile) -> None:
        other = "inventory" if level == "order" else "order"
        code = "RT301" if level == "order" else "RT302"
        block = "filter" if level == "order" else "inventory"
        if v.field_spec(ident.name, other):
            place = "an `inventory` block" if other == "inventory" else "a routing `filter`"
            self.error(code, f"`{ident.name}` is not a field of {level}s", ident.span,
                       hint=f"`{ident.name}` belongs in {place}", source=source)
            return
        candidates = list(v.ORDER_FIELDS if level == "order" else v.INVENTORY_FIELDS)
        if level == "inventory":
            candidates += list(v.FLAGS)
        self.suggest(code, f"unknown {level} field `{ident.name}`", ident.span, ident.name,
                     candidates, fallback_hint=f"{block} fields: " + ", ".join(candidates))

    def _ids(self, value, spec: v.FieldSpec, op: str, source: SourceFile) -> tuple[str, ...] | None:
        many = op in v.MEMBERSHIP
        if isinstance(value, RNumber):
            self.error("RT304", f"`{spec.name}` takes a {spec.value} id, not a number",
                       value.span, source=source)
            return None
        if isinstance(value, RList):
            if not many:
                self.error("RT304", f"`{op}` compares with one {spec.value}, not a list",
                           value.span, hint="use `in` or `not in` with a list", source=source)
                return None
            items = value.items
        else:
            items = (value,)
        ids = []
        for item in items:
            if isinstance(item, RList):
                self.error("RT304", "lists cannot be nested", item.span, source=source)
                return None
            if isinstance(item, RNumber):
                self.error("RT304", f"`{spec.name}` takes {spec.value} ids, not numbers",
                           item.span, source=source)
                return None
            if isinstance(item, RMissing):
                return None
            if not item.value:
                self.error("RT307", f"empty {spec.value} id", item.span, source=source)
                return None
            if item.kinds is not None and spec.value not in item.kinds:
                kinds = " and ".join(sorted(item.kinds))
                via = f" (through `{item.via}`)" if item.via else ""
                self.error("RT206", f"`{item.value}`{via} is {_a(kinds)} {kinds}, "
                                    f"not {_a(spec.value)} {spec.value}",
                           item.span, hint=f"`{spec.name}` compares with {spec.value} ids",
                           source=source)
                return None
            ids.append(item.value)
        return tuple(ids)

    def _measure(self, value, measure: str, name: str, source: SourceFile) -> float | None:
        if not isinstance(value, RNumber):
            self.error("RT304", f"`{name}` takes a number, not {_describe(value)}", value.span,
                       source=source)
            return None
        units = {"distance": v.DISTANCE_UNITS, "days": v.DAY_UNITS,
                 "transit": v.DAY_UNITS, "age": v.DAY_UNITS}.get(measure, ())
        if measure == "transit" and value.unit is None:
            pass  # `transit_days <= 2` reads as days without the unit
        elif units and value.unit not in units:
            wanted = " or ".join(f"`{u}`" for u in units[:2] if u != "day") or ""
            found = f"`{value.unit}`" if value.unit else "no unit"
            self.error("RT305", f"`{name}` needs a unit ({wanted}), found {found}", value.span,
                       hint=f"for example `{value.value} {units[0]}`", source=source)
            return None
        if not units and value.unit is not None:
            self.error("RT305", f"`{name}` takes a plain number, not `{value.unit}`", value.span,
                       source=source)
            return None
        if measure in ("days", "transit", "age") and \
                value.value != value.value.to_integral_value():
            self.error("RT306", f"`{name}` takes whole days, not {value.value}", value.span,
                       hint=f"for example `{int(value.value)} days`", source=source)
            return None
        if measure in ("times", "facilities") and \
                value.value != value.value.to_integral_value():
            self.error("RT307", f"`{name}` takes a whole number, not {value.value}", value.span,
                       source=source)
            return None
        if measure == "facilities" and value.value < 1:
            self.error("RT307", f"`{name}` must be at least 1", value.span,
                       hint="one facility ships the unit: `max_facilities 1`", source=source)
            return None
        if measure in ("distance", "money", "count", "transit", "age", "times") and \
                value.value < 0:
            self.error("RT307", f"`{name}` cannot be negative", value.span, source=source)
            return None
        limit = v.MEASURE_LIMITS.get(measure)
        if limit is not None and abs(value.value) > limit:
            unit = f" {value.unit}" if value.unit else ""
            self.error("RT307", f"`{name}` is out of range", value.span,
                       hint=f"at most {limit:,}{unit}", source=source)
            return None
        return float(value.value)

    # ---- rules ----
    def _rule_parts(self, body: tuple, scope: Scope) -> _RuleParts:
        source = scope.source
        parts = _RuleParts()
        seen: dict[type, n.Node] = {}
        for member in body:
            kind = type(member)
            if kind in seen:
                label = {n.Assign: "assign", n.Inventory: "inventory", n.Sort: "sort by",
                         n.Unfilled: "when unfilled"}[kind]
                self.error("RT409", f"second `{label}` clause", member.span,
                           hint="merge it into the first one", source=source)
                continue
            seen[kind] = member
            if isinstance(member, n.Assign):
                mode = member.mode.name
                if mode not in ("single", "partial"):
                    parts.assign = "invalid"
                    self.suggest("RT309", f"unknown assignment `{mode}`", member.mode.span, mode,
                                 ["single", "partial"],
                                 fallback_hint="write `assign single` or `assign partial`")
                else:
                    parts.assign = mode
            elif isinstance(member, n.Inventory):
                self._inventory(member, scope, parts)
            elif isinstance(member, n.Sort):
                parts.sorts = self._sorts(member, "inventory", source)
            elif isinstance(member, n.Unfilled):
                self._unfilled(member, scope, parts)
        return parts

    def _inventory(self, block: n.Inventory, scope: Scope, parts: _RuleParts) -> None:
        source = scope.source
        seen_flags: set[str] = set()
        for member in block.members:
            if isinstance(member, n.Condition):
                checked = self._condition(member, "inventory", scope, source)
                if checked is not None:
                    parts.conditions.append(checked)
                continue
            if member.name in seen_flags:
                self.error("RT412", f"`{member.name}` given twice", member.span, source=source)
            seen_flags.add(member.name)
            parts.settings_where[member.name] = Where(source, member.span)
            if member.name == "shipment_threshold":
                value = self._resolve(member.value, scope)
                if not isinstance(value, RMissing):
                    parts.shipment_threshold = self._measure(value, "money", member.name, source)
            elif member.name == "split_cost":
                value = self._resolve(member.value, scope)
                if isinstance(value, RMissing):
                    continue
                measure = "distance" if isinstance(value, RNumber) and value.unit else "money"
                parts.split_cost = self._measure(value, measure, member.name, source)
                parts.split_cost_unit = value.unit if measure == "distance" else "money"
                parts.split_cost_where = Where(source, member.span)
            elif member.name == "max_facilities":
                value = self._resolve(member.value, scope)
                if not isinstance(value, RMissing):
                    number = self._measure(value, "facilities", member.name, source)
                    parts.max_facilities = None if number is None else int(number)
            else:
                setattr(parts, member.name, True)

    def _sorts(self, sort: n.Sort, level: str, source: SourceFile) -> list[CheckedSortKey]:
        keys = []
        seen: set[str] = set()
        table = v.ORDER_SORTS if level == "order" else v.INVENTORY_SORTS
        for key in sort.keys:
            name = key.field.name
            spec = table.get(name)
            if spec is None:
                other = v.INVENTORY_SORTS if level == "order" else v.ORDER_SORTS
                code = "RT301" if level == "order" else "RT302"
                if name in other:
                    where = "a rule" if level == "order" else "a routing"
                    self.error(code, f"`{name}` is not a {level} sort", key.field.span,
                               hint=f"`{name}` sorts facilities in {where}", source=source)
                else:
                    self.suggest(code, f"unknown {level} sort `{name}`", key.field.span, name,
                                 table, fallback_hint="sorts: " + ", ".join(table))
                continue
            if key.nulls is not None and not spec.nullable:
                self.error("RT308", f"`{name}` is never missing, so `nulls {key.nulls}` means "
                                    "nothing", key.span, source=source)
                continue
            if name in seen:
                self.error("RT412", f"`{name}` is already a sort key", key.field.span,
                           hint="only the first one matters", source=source)
                continue
            seen.add(name)
            keys.append(CheckedSortKey(name, key.descending, key.nulls == "first",
                                       Where(source, key.span)))
        return keys

    def _unfilled(self, block: n.Unfilled, scope: Scope, parts: _RuleParts) -> None:
        source = scope.source
        parts.has_unfilled = True
        next_rule = move = clear = auto = None
        for action in block.actions:
            if isinstance(action, n.NextRule):
                next_rule = action
            elif isinstance(action, n.MoveToQueue):
                move = action
                if action.queue is None or isinstance(action.queue, n.MissingValue):
                    self.error("RT405", "`move to queue` names no queue", action.span,
                               hint="for example `move to queue UNFILLABLE_PARKING`",
                               source=source)
                    parts.move_to_queue = ""
                    continue
                value = self._resolve(action.queue, scope)
                spec = v.FieldSpec("move to queue", "order", "queue", ("==",), "", "")
                ids = None if isinstance(value, RMissing) else self._ids(value, spec, "==", source)
                parts.move_to_queue = ids[0] if ids else ""
            elif isinstance(action, n.AutoCancel):
                auto = action
                value = self._resolve(action.days, scope)
                if not isinstance(value, RMissing):
                    days = self._measure(value, "days", "auto_cancel after", source)
                    if days is not None and days < 0:  # a date in the past: no meaning
                        self.error("RT307", "`auto_cancel after` cannot be negative",
                                   value.span, hint="days from now: 0 or more", source=source)
                    elif days is not None:
                        parts.auto_cancel_days = int(days)
            elif isinstance(action, n.ClearAutoCancel):
                clear = action
        if next_rule is not None and move is not None:
            self.error("RT410", "`next rule` and `move to queue` contradict each other",
                       next_rule.span, hint="moving to a queue ends the unit's rules; keep one",
                       source=source)
        if clear is not None and auto is not None:
            self.error("RT412", "`auto_cancel after` has no effect with `clear auto_cancel`",
                       auto.span, hint="clearing the auto-cancel date wins", source=source)
        parts.clear_auto_cancel = clear is not None

    def _rule(self, rule: n.Rule, item_mode: bool) -> tuple[CheckedRule, bool]:
        """The checked rule, and whether it moves every unfilled unit to a queue."""
        parts = _RuleParts()
        template_parts = None
        if rule.extends is not None:
            template = self.scope.templates.get(rule.extends.name)
            if template is None:
                self.suggest("RT203", f"unknown template `{rule.extends.name}`",
                             rule.extends.span, rule.extends.name, self.scope.templates,
                             fallback_hint="define it with `template NAME { ... }` or `use` "
                                           "the module that has it")
            else:
                self.references.append(
                    Reference(rule.extends.name, self.where(rule.extends.span), template))
                template_parts = self._template_parts(template)
        own = self._rule_parts(rule.body or (), self.scope)
        parts = own.over(template_parts) if template_parts else own
        status = rule.status.name if rule.status else "active"
        active_from, active_until = self._window(rule.window, f"rule `{rule.name.value}`")
        where = self.where(rule.name.span)
        if parts.assign is None and not (rule.extends and template_parts is None):
            self.error("RT411", f"rule `{rule.name.value}` says neither `assign single` nor "
                                "`assign partial`", rule.name.span,
                       hint="add `assign single` or `assign partial` to the rule or its template")
        if item_mode and parts.assign == "single" and status == "active":
            self.error("RT404", "`assign single` in an item-by-item routing", rule.name.span,
                       hint="the promise-date filter routes items one at a time; `assign "
                            "partial` lets an item's quantity split across facilities")
        self._rule_structure(rule, parts)
        unit = next((c.unit for c in parts.conditions if c.field == "distance" and c.unit), None)
        checked = CheckedRule(
            name=rule.name.value, status=status, assign=parts.assign if parts.assign in ("single", "partial") else "single",
            conditions=tuple(parts.conditions), sorts=tuple(parts.sorts or ()),
            keep_item_groups_together=parts.keep_item_groups_together,
            ignore_facility_order_limit=parts.ignore_facility_order_limit,
            only_if_all_items_available=parts.only_if_all_items_available,
            shipment_threshold=parts.shipment_threshold, split_cost=parts.split_cost,
            split_cost_unit=parts.split_cost_unit, distance_unit=unit,
            move_to_queue=parts.move_to_queue or None, auto_cancel_days=parts.auto_cancel_days,
            clear_auto_cancel=parts.clear_auto_cancel, where=where,
            settings_where=tuple(parts.settings_where.items()),
            max_facilities=parts.max_facilities, active_from=active_from,
            active_until=active_until)
        return checked, bool(parts.move_to_queue)

    def _template_parts(self, template: Definition) -> _RuleParts:
        scope = template.scope
        if scope is self.scope:
            # Problems inside a local template were reported once when it was defined.
            saved = len(self.diagnostics)
            parts = self._rule_parts(template.node.body, scope)
            del self.diagnostics[saved:]
            return parts
        return self._detached(scope)._rule_parts(template.node.body, scope)

    def _detached(self, scope: Scope) -> _ModuleChecker:
        """A checker for names of another module, whose own check reports its problems: what
        this one finds there is dropped."""
        checker = _ModuleChecker(self.workspace, ParsedModule(
            None, scope.source, n.Module(span=Span(0, 0), items=()), []))
        checker.scope = scope
        return checker

    def _rule_structure(self, rule: n.Rule, parts: _RuleParts) -> None:
        includes = {i for c in parts.conditions if c.field == "facility_group"
                    and c.op in ("==", "in") for i in c.ids}
        for key in parts.sorts or ():
            if key.field == "facility_sequence" and not includes:
                self.error("RT403", "`facility_sequence` sort without a facility group",
                           key.where.span,
                           hint="add `facility_group == GROUP` (or `in [...]`) to the rule's "
                                "inventory block: the sequence is read from those groups",
                           source=key.where.source)
        excluded = {i for c in parts.conditions if c.field == "facility_group"
                    and c.op in ("!=", "not in") for i in c.ids}
        single_groups = [c for c in parts.conditions
                         if c.field == "facility_group" and c.op in ("==", "in")]
        for condition in single_groups:
            if set(condition.ids) <= excluded:
                self.error("RT406", "this rule includes and excludes the same facility groups, "
                                    "so no facility can pass", condition.where.span,
                           hint="remove the include or the exclude", source=condition.where.source)
                break
        distances = [c for c in parts.conditions if c.field == "distance"]
        units = {c.unit for c in distances}
        if len(units) > 1:
            self.error("RT305", "a rule measures distance in one unit", distances[-1].where.span,
                       hint=f"use `{distances[0].unit}` throughout",
                       source=distances[-1].where.source)
        elif _empty_range(distances):
            self.error("RT406", "these distance conditions exclude every facility",
                       distances[-1].where.span, hint="no distance satisfies all of them",
                       source=distances[-1].where.source)
        if parts.split_cost is not None and parts.assign != "single":
            wanted = "shipping_cost" if parts.split_cost_unit == "money" else "distance"
            if not any(key.field == wanted for key in parts.sorts or ()):
                where = parts.split_cost_where
                self.error("RT414", f"`split_cost` has no effect without `sort by {wanted}`",
                           where.span, hint=f"an amount adds to the `shipping_cost` sort, a "
                                            f"distance to the `distance` sort; add `{wanted}` "
                                            "to the rule's sorts", source=where.source)
        if parts.assign == "single":
            for name in ("keep_item_groups_together", "only_if_all_items_available",
                         "shipment_threshold", "split_cost"):
                if getattr(parts, name) not in (False, None):
                    self.error("RT414", f"`{name}` has no effect with `assign single`",
                               rule.name.span,
                               hint="one facility ships the whole unit or nothing; remove the "
                                    "setting or use `assign partial`")

    # ---- routings and groups ----
    def _routing(self, routing: n.Routing) -> CheckedRouting:
        filters: list[CheckedCondition] = []
        sorts: list[CheckedSortKey] = []
        seen: dict[type, n.Node] = {}
        optimize = None
        for member in routing.members:
            if isinstance(member, (n.Filter, n.Sort, n.Optimize)):
                if type(member) in seen:
                    label = {n.Filter: "filter", n.Sort: "sort by",
                             n.Optimize: "optimize"}[type(member)]
                    self.error("RT409", f"second `{label}` clause in routing", member.span,
                               hint="merge it into the first one")
                    continue
                seen[type(member)] = member
            if isinstance(member, n.Filter):
                for condition in member.conditions:
                    checked = self._condition(condition, "order", self.scope, self.source)
                    if checked is not None:
                        filters.append(checked)
            elif isinstance(member, n.Sort):
                sorts = self._sorts(member, "order", self.source)
            elif isinstance(member, n.Optimize):
                optimize = self._optimize(member)
        item_mode = any(c.field == "promise_date" for c in filters) or any(
            isinstance(m, n.Filter) and any(c.field.name == "promise_date" for c in m.conditions)
            for m in routing.members)
        rules = []
        names: dict[str, n.Rule] = {}
        parked_by: n.Rule | None = None
        for member in routing.members:
            if not isinstance(member, n.Rule):
                continue
            if member.name.value in names:
                self.error("RT202", f"duplicate rule `{member.name.value}`", member.name.span,
                           hint="rule names are unique within a routing")
            names[member.name.value] = member
            checked, parks = self._rule(member, item_mode)
            if checked.status == "active":
                if parked_by is not None:
                    self.error("RT402", f"rule `{checked.name}` can never run", member.name.span,
                               hint=f"rule `{parked_by.name.value}` before it moves every unit "
                                    "it cannot fill to a queue")
                elif parks and member.window is None:  # one with a window parks only in it
                    parked_by = member
            rules.append(checked)
        status = routing.status.name if routing.status else "active"
        if status == "active" and not any(r.status == "active" for r in rules) \
                and not self._syntax_error_in(routing.span):
            self.error("RT401", f"routing `{routing.name.value}` has no active rule",
                       routing.name.span,
                       hint="add a rule, or mark the routing `draft` until it has one")
        active_from, active_until = self._window(routing.window,
                                                 f"routing `{routing.name.value}`")
        return CheckedRouting(routing.name.value, status, tuple(filters), tuple(sorts),
                              tuple(rules), item_mode, self.where(routing.name.span),
                              active_from, active_until, optimize)

    def _optimize(self, block: n.Optimize) -> CheckedOptimize:
        """The block's settings against the table (routing_dsl.optimize.settings): known
        names (RT420), each once (RT412), a word it accepts or a number of its measure in
        range (RT421, RT304, RT305, RT307)."""
        values = {name: spec.default for name, spec in OPTIMIZE_SETTINGS.items()}
        given: set[str] = set()
        for setting in block.settings:
            name = setting.name.name
            spec = OPTIMIZE_SETTINGS.get(name)
            if spec is None:
                self.suggest("RT420", f"unknown optimize setting `{name}`", setting.name.span,
                             name, list(OPTIMIZE_SETTINGS),
                             fallback_hint="settings: " + ", ".join(OPTIMIZE_SETTINGS))
                continue
            if name in given:
                self.error("RT412", f"`{name}` given twice", setting.span)
            given.add(name)
            value = setting.value
            if isinstance(value, n.NameRef) and value.name in spec.words:
                values[name] = None if value.name in OPTIMIZE_UNSET else value.name
                continue
            words = " or ".join(f"`{w}`" for w in spec.words)
            if isinstance(value, n.MissingValue):
                continue
            if spec.measure is None:
                shown = value.name if isinstance(value, n.NameRef) else formatted(value)
                self.suggest("RT421", f"`{name}` takes {words}, not `{shown}`", value.span,
                             shown, list(spec.words), fallback_hint=f"for example "
                             f"`{spec.example}`")
                continue
            resolved = self._resolve(value, self.scope)
            if isinstance(resolved, RMissing):
                continue
            if not isinstance(resolved, RNumber):
                also = f" or {words}" if words else ""
                self.error("RT421", f"`{name}` takes a number{also}, not "
                                    f"{_describe(resolved)}", value.span,
                           hint=f"for example `{spec.example}`")
                continue
            if resolved.unit is not None:
                self.error("RT305", f"`{name}` takes a plain number, not `{resolved.unit}`",
                           value.span)
                continue
            number = resolved.value
            if spec.whole and number != number.to_integral_value():
                self.error("RT307", f"`{name}` takes a whole number, not {number}", value.span,
                           hint=f"for example `{spec.example}`")
                continue
            if not spec.low <= number <= spec.high:
                self.error("RT307", f"`{name}` is out of range", value.span,
                           hint=f"from {spec.low:,} to {spec.high:,}")
                continue
            values[name] = int(number) if spec.whole else float(number)
        return CheckedOptimize(tuple(values.items()), self.where(block.span))

    def _window(self, window: n.Window | None, what: str) -> tuple[str | None, str | None]:
        """The window's bounds as written, once each is a valid date or date and time; an
        error when it ends before it starts, a warning when it has already ended."""
        if window is None:
            return None, None
        bounds = []
        for bound in (window.start, window.end):
            if bound is None:
                bounds.append(None)
                continue
            moment = parse_moment(bound.value)
            if moment is None:
                self.error("RT415", f"\"{bound.value[:40]}\" is not a date and time",
                           bound.span, hint="write `\"2026-11-27\"` or `\"2026-11-27T08:00\"` "
                                            "(read in the group's time zone), or add a UTC "
                                            "offset: `\"2026-11-27T08:00-05:00\"`")
                return None, None
            bounds.append(moment)
        start, end = bounds
        zone = self._group_zone
        if start is not None and end is not None and (
                start >= end if (start.tzinfo is None) == (end.tzinfo is None)
                else _earliest(start, zone) >= _latest(end, zone)):
            self.error("RT415", f"the window of {what} ends before it starts", window.span,
                       hint="`active from` comes before `until`")
            return None, None
        now = self.workspace.now or datetime.now(UTC)
        if end is not None and _latest(end, zone) <= now:
            self.error("RT416", f"the window of {what} ended on "
                                f"{window.end.value}", window.end.span,
                       hint="it never runs again: move the dates, or mark it `archived`")
        return (None if window.start is None else window.start.value,
                None if window.end is None else window.end.value)

    def _store_id(self, value: n.Value) -> str:
        """A product store id: a bare name is taken literally unless it names a constant."""
        if isinstance(value, n.NameRef):
            if value.name not in self.scope.constants:
                return value.name
            resolved = self._resolve(value, self.scope)
            if isinstance(resolved, RId):
                return resolved.value
            self.error("RT304", "a product store is an id", value.span)
            return ""
        if isinstance(value, n.StringLit):
            return value.value
        if not isinstance(value, n.MissingValue):
            self.error("RT304", "a product store is an id", value.span)
        return ""

    def _group(self, group: n.Group) -> CheckedGroup:
        store = self._store_id(group.store)
        cron = timezone = None
        paused = False
        schedules = [m for m in group.members if isinstance(m, n.Schedule)]
        for extra in schedules[1:]:
            self.error("RT409", "second `schedule` in group", extra.span,
                       hint="a group runs on one schedule")
        if schedules:
            schedule = schedules[0]
            cron, paused = schedule.cron.value, schedule.paused
            if not _valid_cron(cron):
                self.error("RT407", f"invalid cron expression \"{cron}\"", schedule.cron.span,
                           hint="five fields (`*/15 * * * *`), or Quartz style with seconds first "
                                "(`0 */15 * * * ?`)")
            if schedule.timezone is not None:
                timezone = schedule.timezone.value
                if not v.is_known_zone(timezone):
                    guess = did_you_mean(timezone, _zones())
                    self.error("RT408", f"unknown time zone \"{timezone}\"",
                               schedule.timezone.span,
                               hint=f"did you mean \"{guess}\"?" if guess else
                               "use an IANA zone such as \"America/New_York\"",
                               fixes=(Fix(f"Change to \"{guess}\"", schedule.timezone.span,
                                          f'"{guess}"'),) if guess else ())
        self._group_zone = ZoneInfo(timezone) if timezone and v.is_known_zone(timezone) \
            else None
        routings = []
        names: dict[str, n.Routing] = {}
        for member in group.members:
            if isinstance(member, n.Routing):
                if member.name.value in names:
                    self.error("RT202", f"duplicate routing `{member.name.value}`",
                               member.name.span, hint="routing names are unique within a group")
                names[member.name.value] = member
                routings.append(self._routing(member))
        if not any(r.status == "active" for r in routings) and \
                not self._syntax_error_in(group.span):
            self.error("RT413", f"group `{group.name.value}` has no active routing",
                       group.name.span)
        return CheckedGroup(group.name.value, store, cron, timezone, paused, tuple(routings),
                            self.where(group.name.span))


@dataclass
class _RuleParts:
    """A rule's clauses as checked, before template and rule are merged."""

    assign: str | None = None
    conditions: list = field(default_factory=list)
    sorts: list | None = None
    keep_item_groups_together: bool = False
    ignore_facility_order_limit: bool = False
    only_if_all_items_available: bool = False
    shipment_threshold: float | None = None
    split_cost: float | None = None
    split_cost_unit: str = "money"
    split_cost_where: Where | None = None
    settings_where: dict[str, Where] = field(default_factory=dict)
    has_unfilled: bool = False
    move_to_queue: str | None = None
    auto_cancel_days: int | None = None
    clear_auto_cancel: bool = False
    max_facilities: int | None = None

    def over(self, base: _RuleParts) -> _RuleParts:
        """These clauses on top of a template's: conditions and flags add up; assign, sort and
        the unfilled actions replace the template's when given."""
        merged = _RuleParts(
            assign=self.assign or base.assign,
            conditions=base.conditions + self.conditions,
            sorts=self.sorts if self.sorts is not None else base.sorts,
            keep_item_groups_together=self.keep_item_groups_together or
            base.keep_item_groups_together,
            ignore_facility_order_limit=self.ignore_facility_order_limit or
            base.ignore_facility_order_limit,
            only_if_all_items_available=self.only_if_all_items_available or
            base.only_if_all_items_available,
            shipment_threshold=self.shipment_threshold if self.shipment_threshold is not None
            else base.shipment_threshold,
            max_facilities=self.max_facilities if self.max_facilities is not None
            else base.max_facilities,
        )
        merged.settings_where = {**base.settings_where, **self.settings_where}
        own_split = self.split_cost is not None
        merged.split_cost = self.split_cost if own_split else base.split_cost
        merged.split_cost_unit = self.split_cost_unit if own_split else base.split_cost_unit
        merged.split_cost_where = self.split_cost_where if own_split else base.split_cost_where
        actions = self if self.has_unfilled else base
        merged.has_unfilled = actions.has_unfilled
        merged.move_to_queue = actions.move_to_queue
        merged.auto_cancel_days = actions.auto_cancel_days
        merged.clear_auto_cancel = actions.clear_auto_cancel
        return merged


# ---- helpers ------------------------------------------------------------------------------------

def _relocate(value, span: Span, via: str):
    """A constant's value seen at its use site: problems point at the use."""
    if isinstance(value, RId):
        return RId(value.value, value.kinds, span, via)
    if isinstance(value, RNumber):
        return RNumber(value.value, value.unit, span)
    if isinstance(value, RList):
        return RList(tuple(_relocate(item, span, via) for item in value.items), span)
    return RMissing(span)


def _empty_range(conditions: list[CheckedCondition]) -> bool:
    """Whether numeric conditions on one field leave no value (e.g. `< 10` and `> 20`)."""
    low, low_open, high, high_open = float("-inf"), False, float("inf"), False
    for c in conditions:
        if c.number is None:
            continue
        if c.op in (">", ">=") and (c.number > low or (c.number == low and c.op == ">")):
            low, low_open = c.number, c.op == ">"
        if c.op in ("<", "<=") and (c.number < high or (c.number == high and c.op == "<")):
            high, high_open = c.number, c.op == "<"
    return low > high or (low == high and (low_open or high_open))


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _describe(value) -> str:
    if isinstance(value, RList):
        return "a list"
    if isinstance(value, RId):
        return f"`{value.value}`"
    return "this"


def _valid_cron(expression: str) -> bool:
    fields_ = expression.split()
    if len(fields_) not in (5, 6, 7):
        return False
    if plainly_valid(expression):  # most schedules: no need to load croniter
        return True
    from croniter import croniter
    try:
        if len(fields_) == 5:
            return croniter.is_valid(expression)
        return croniter.is_valid(expression, second_at_beginning=True)
    except Exception:  # croniter raises assorted errors on odd input
        return False


def _zones() -> list[str]:
    return v.zone_names()


_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?"
                     r"(?:Z|[+-]\d{2}:\d{2})?")


def parse_moment(text: str) -> datetime | None:
    """A window bound: `2026-11-27`, `2026-11-27T08:00[:00]`, with or without a UTC offset
    (without one it is a wall-clock time of the group's time zone); None when it is not one."""
    if not _MOMENT.fullmatch(text):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if 1970 <= moment.year <= 9000 else None


# Where a wall-clock time without a zone may fall: UTC-12 is the latest, UTC+14 the earliest.
def _latest(moment: datetime, zone: ZoneInfo | None) -> datetime:
    if moment.tzinfo is not None:
        return moment
    if zone is not None:
        return moment.replace(tzinfo=zone)
    return (moment + timedelta(hours=12)).replace(tzinfo=UTC)


def _earliest(moment: datetime, zone: ZoneInfo | None) -> datetime:
    if moment.tzinfo is not None or zone is not None:
        return _latest(moment, zone)
    return (moment - timedelta(hours=14)).replace(tzinfo=UTC)
