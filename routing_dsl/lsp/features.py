"""Editor features as pure functions over text, offsets and check results.

Offsets are code-point offsets into the document (as spans are); the server converts them to
LSP positions (UTF-16) with pygls. Everything here is testable without a client.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import nodes as n
from .. import vocabulary as v
from ..checker import CheckResult, Definition, Reference, Workspace
from ..diagnostics import Diagnostic
from ..formatter import format_module
from .._resources import stdlib_dir
from ..loader import Loader, SourceError, project_root, stdlib_modules
from ..optimize.settings import SETTINGS as OPTIMIZE_SETTINGS
from ..parser import keyword_terminals, parse_prefix
from ..source import SourceFile, Span

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r'(?P<comment>#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\.)*"?)'
                    r"|(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
                    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>==|!=|<=|>=|<|>|=)")
_COMPARISON_TERMINALS = {"EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}


# ---- the project: open buffers and workspace files --------------------------------------------

@dataclass
class Project:
    """What the server knows: workspace folders and the text of open documents.

    Checks share one :class:`Workspace` (so imports are parsed and checked once) until
    something changes: an edit, an open or close, or a file changed on disk."""

    roots: list[Path] = field(default_factory=list)
    open_documents: dict[Path, str] = field(default_factory=dict)
    _workspace: Workspace | None = field(default=None, repr=False)

    generation: int = 0  # bumped by every change, so a background check knows it is stale

    def invalidate(self) -> None:
        self._workspace = None
        self.generation += 1

    def adopt(self, workspace: Workspace) -> None:
        """Keep a workspace checked in the background for the requests that follow."""
        self._workspace = workspace

    def set_text(self, path: Path, text: str | None) -> None:
        """An open document's new text (None when it is closed)."""
        path = path.resolve()
        if text is None:
            self.open_documents.pop(path, None)
        elif self.open_documents.get(path) == text:
            return
        else:
            self.open_documents[path] = text
        self.invalidate()

    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace(Loader(overrides=dict(self.open_documents)),
                                        tuple(self.roots))
        return self._workspace

    def check(self, path: Path, text: str | None = None) -> CheckResult:
        if text is not None:
            self.set_text(path, text)
        return self.workspace().check_path(path, name=str(path))

    def in_workspace(self, path: Path) -> bool:
        """Whether ``path`` is the user's to edit: open in the editor or inside a workspace
        folder, and never the installed stdlib."""
        path = path.resolve()
        if path.is_relative_to(stdlib_dir().resolve()):
            return False
        return path in self.open_documents or any(
            path.is_relative_to(root.resolve()) for root in self.roots)

    def files(self) -> list[Path]:
        found = {p.resolve() for p in self.open_documents}
        for root in self.roots:
            found.update(p.resolve() for p in root.rglob("*.route")
                         if ".venv" not in p.parts and "node_modules" not in p.parts)
        return sorted(found)

    def check_all(self) -> list[CheckResult]:
        workspace = self.workspace()
        results = []
        for path in self.files():
            try:
                results.append(workspace.check_path(path, name=str(path)))
            except SourceError:
                continue
        return results


class Positions:
    """Code-point offsets <-> LSP positions (0-based line, UTF-16 character) for one text, in
    O(log n) per conversion: editors ask for thousands per request."""

    def __init__(self, source: SourceFile):
        self.text = source.text
        self.starts = source.line_starts
        self.ascii = self.text.isascii()

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        if self.ascii:
            return line, offset - start
        return line, _utf16_length(self.text[start:offset])

    def offset(self, line: int, character: int) -> int:
        if line >= len(self.starts):
            return len(self.text)
        start = self.starts[max(0, line)]
        end = self.starts[line + 1] - 1 if line + 1 < len(self.starts) else len(self.text)
        if self.ascii:
            return min(start + max(0, character), end)
        units = 0
        for index in range(start, end):
            if units >= character:
                return index
            units += 2 if ord(self.text[index]) > 0xFFFF else 1
        return end


def _utf16_length(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# ---- diagnostics --------------------------------------------------------------------------------

def own_diagnostics(result: CheckResult) -> list[Diagnostic]:
    """The diagnostics located in the checked file itself (imports report their own)."""
    return [d for d in result.diagnostics if d.source is result.parsed.source]


# ---- what is under the cursor ------------------------------------------------------------------

def word_at(text: str, offset: int) -> tuple[str, Span] | None:
    for match in _WORD.finditer(text, max(0, offset - 200), min(len(text), offset + 200)):
        if match.start() <= offset <= match.end():
            return match.group(), Span(match.start(), match.end())
    return None


def reference_at(result: CheckResult, offset: int) -> Reference | None:
    for reference in result.references:
        if reference.where.source is result.parsed.source and \
                reference.where.span.start <= offset <= reference.where.span.end:
            return reference
    return None


def definition_at(result: CheckResult, offset: int) -> Definition | None:
    """The definition named at ``offset``: a reference to it, or its own defining name."""
    reference = reference_at(result, offset)
    if reference is not None:
        return reference.definition
    for definition in result.definitions:
        if definition.where.source is result.parsed.source and \
                definition.where.span.start <= offset <= definition.where.span.end:
            return definition
    return None


def _same(a: Definition, b: Definition) -> bool:
    """Whether two checks' definitions are the same thing (modules: the same file, however
    each importer spelled its path)."""
    if a.kind == "module" and b.kind == "module":
        return _definition_path(a) == _definition_path(b)
    return (a.kind == b.kind and a.name == b.name and a.where.span == b.where.span
            and _definition_path(a) == _definition_path(b))


def _definition_path(definition: Definition) -> str:
    return str(Path(definition.where.source.name).resolve())


# ---- navigation -----------------------------------------------------------------------------------

def find_references(results: list[CheckResult], definition: Definition,
                    include_declaration: bool = True) -> list[tuple[str, Span]]:
    """Every use of ``definition`` across the checked files, as (path, span)."""
    found: set[tuple[str, int, int]] = set()
    if include_declaration and definition.kind != "module":
        found.add((_definition_path(definition), definition.where.span.start,
                   definition.where.span.end))
    for result in results:
        path = str(Path(result.parsed.source.name).resolve())
        for reference in result.references:
            if reference.where.source is result.parsed.source and \
                    _same(reference.definition, definition):
                found.add((path, reference.where.span.start, reference.where.span.end))
    return [(path, Span(start, end)) for path, start, end in sorted(found)]


def rename_target(definition: Definition | None, project: Project) -> str | None:
    """Why ``definition`` cannot be renamed, or None when it can (LSP prepareRename)."""
    if definition is None:
        return "nothing to rename here"
    if definition.kind not in ("constant", "template"):
        return "only constants and templates can be renamed"
    if not project.in_workspace(Path(definition.where.source.name)):
        return f"`{definition.name}` is defined outside the workspace"
    return None


def rename(results: list[CheckResult], definition: Definition, new_name: str,
           project: Project | None = None) -> dict[str, list[tuple[Span, str]]] | str:
    """Edits per file, or a message saying why the rename is refused: the new name must be a
    free name in every file that sees the definition, and every edit inside the workspace."""
    if definition.kind not in ("constant", "template"):
        return "only constants and templates can be renamed"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new_name):
        return f"`{new_name}` is not a name"
    if new_name in keyword_terminals().values():
        return f"`{new_name}` is a keyword"
    references = find_references(results, definition)
    files = {path for path, _ in references}
    for result in results:
        if str(Path(result.parsed.source.name).resolve()) not in files:
            continue
        scope = result.scope
        taken = scope.templates if definition.kind == "template" else scope.constants
        if new_name in taken or (definition.kind == "constant" and new_name in scope.catalog):
            return f"`{new_name}` already exists in {Path(result.parsed.source.name).name}"
    edits: dict[str, list[tuple[Span, str]]] = {}
    for path, span in references:
        if project is not None and not project.in_workspace(Path(path)):
            return f"renaming `{definition.name}` would edit {path}, outside the workspace"
        edits.setdefault(path, []).append((span, new_name))
    return edits


def workspace_symbols(results: list[CheckResult], query: str) -> list[tuple[str, Symbol]]:
    """(path, symbol) for every group, routing, rule, constant, template and declared id whose
    name contains ``query`` (case-insensitive), across the workspace."""
    query = query.lower()
    found = []
    for result in results:
        path = str(Path(result.parsed.source.name).resolve())
        stack = document_symbols(result.parsed.module)
        while stack:
            symbol = stack.pop()
            stack.extend(symbol.children)
            if symbol.kind not in ("declare", "version") and query in symbol.name.lower():
                found.append((path, symbol))
    found.sort(key=lambda item: (item[1].name.lower(), item[0], item[1].span.start))
    return found


def document_links(result: CheckResult) -> list[tuple[Span, str]]:
    """(span of the module name, path of the module) for every `use` that resolves."""
    links = []
    for reference in result.references:
        if reference.definition.kind == "module" and reference.where.source is \
                result.parsed.source:
            target = Path(reference.definition.where.source.name).resolve()
            links.append((reference.where.span, str(target)))
    return links


# ---- hover ----------------------------------------------------------------------------------------

def hover(result: CheckResult, offset: int) -> tuple[str, Span] | None:
    """Markdown describing the thing at ``offset``, and its span."""
    text = result.parsed.source.text
    definition = definition_at(result, offset)
    found = word_at(text, offset)
    if definition is not None and found is not None:
        return _describe_definition(definition), found[1]
    operator = _operator_at(text, offset)
    if operator is not None:
        op, span = operator
        return f"**`{op}`**: {v.OPERATOR_DOCS[op]}", span
    if found is None:
        return None
    word, span = found
    level = _field_level_at(result.parsed.module, span)
    if level is not None:
        spec = v.field_spec(word, level)
        sort = v.sort_spec(word, level)
        if spec is not None:
            ops = " ".join(f"`{o}`" for o in spec.operators)
            return (f"**`{word}`** ({level} field, {spec.value})\n\n{spec.doc}\n\n"
                    f"Operators: {ops}\n\nExample: `{spec.example}`"), span
        if sort is not None:
            return f"**`{word}`** ({level} sort)\n\n{sort.doc}", span
    setting = _optimize_setting_at(result.parsed.module, span)
    if setting is not None:
        return (f"**`{setting.name}`** (optimize setting)\n\n{setting.doc}\n\n"
                f"Example: `{setting.example}`"), span
    if word in v.KEYWORDS:
        return f"**`{word}`**\n\n{v.KEYWORDS[word]}", span
    return None


def _optimize_setting_at(module: n.Module, span: Span):
    """The settings-table entry of the `optimize` setting named at ``span``, if any."""
    for node in n.walk(module):
        if isinstance(node, n.OptimizeSetting) and node.name.span == span:
            return OPTIMIZE_SETTINGS.get(node.name.name)
    return None


def _describe_definition(definition: Definition) -> str:
    source = definition.where.source
    if definition.kind == "constant":
        value = source.slice(definition.node.span)
        return f"```route\n{value}\n```\nconstant, defined in `{Path(source.name).name}`"
    if definition.kind == "template":
        first = source.slice(definition.node.span).splitlines()
        body = "\n".join(first[:12]) + ("\n  ..." if len(first) > 12 else "")
        return f"```route\n{body}\n```\ntemplate, defined in `{Path(source.name).name}`"
    if definition.kind == "declared":
        doc = f": {definition.doc}" if definition.doc else ""
        return f"**`{definition.name}`** ({definition.id_kind}){doc}\n\ndeclared in " \
               f"`{Path(source.name).name}`"
    header = []
    for line in source.text.splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    about = "\n".join(header).strip()
    return f"module `{definition.name}` (`{Path(source.name).name}`)" + (
        f"\n\n{about}" if about else "")


def _operator_at(text: str, offset: int) -> tuple[str, Span] | None:
    for match in re.finditer(r"==|!=|<=|>=|<|>", text[max(0, offset - 2): offset + 2]):
        start = max(0, offset - 2) + match.start()
        if start <= offset <= start + len(match.group()):
            return match.group(), Span(start, start + len(match.group()))
    return None


def _field_level_at(module: n.Module, span: Span) -> str | None:
    """'order' or 'inventory' when ``span`` is a field name of a condition or sort key."""
    level_by_span: dict[tuple[int, int], str] = {}
    for node in n.walk(module):
        if isinstance(node, n.Filter):
            for c in node.conditions:
                level_by_span[(c.field.span.start, c.field.span.end)] = "order"
        elif isinstance(node, n.Inventory):
            for c in node.members:
                if isinstance(c, n.Condition):
                    level_by_span[(c.field.span.start, c.field.span.end)] = "inventory"
        elif isinstance(node, n.Routing):
            for member in node.members:
                if isinstance(member, n.Sort):
                    for key in member.keys:
                        level_by_span[(key.field.span.start, key.field.span.end)] = "order"
        elif isinstance(node, (n.Rule, n.Template)):
            for member in node.body or ():
                if isinstance(member, n.Sort):
                    for key in member.keys:
                        level_by_span[(key.field.span.start, key.field.span.end)] = "inventory"
    return level_by_span.get((span.start, span.end))


# ---- completion -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # keyword | field | operator | value | constant | template | module | unit
    detail: str = ""
    documentation: str = ""


def complete(result: CheckResult | None, text: str, offset: int) -> list[Completion]:
    """Completions valid at ``offset``."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    in_string = _string_completions(result, text, offset)
    if in_string is not None:
        return in_string
    tokens, accepts = parse_prefix(text[_item_start(text, start):start])
    if not accepts:
        return _fallback_completions(result)
    if tokens and tokens[-1].type == "QUEUE":
        return _value_completions(result, "queue")
    if len(tokens) >= 2 and tokens[-1].type == "DOT" and "USE" in {t.type for t in tokens[-4:]}:
        typed = text[text.rfind("use", 0, start) + 3:start].strip()
        return [Completion(m[len(typed):], "module") for m in stdlib_modules()
                if m.startswith(typed)]
    items: list[Completion] = []
    keywords = keyword_terminals()
    context = _context(tokens)
    if "NAME" in accepts:
        items += _name_completions(result, tokens, context)
    operators = [_COMPARISON_TERMINALS[t] for t in sorted(accepts) if t in _COMPARISON_TERMINALS]
    if operators or {"IN", "IS", "WITHIN"} & accepts:
        items += _operator_completions(tokens, context, accepts)
    for terminal in sorted(accepts):
        word = keywords.get(terminal)
        if word and word not in ("in", "not", "is", "within") or (
                word in ("in", "not", "is", "within") and not operators):
            items.append(Completion(word, "keyword", documentation=v.KEYWORDS.get(word, "")))
    unique: dict[str, Completion] = {}
    for item in items:
        unique.setdefault(item.label, item)
    return list(unique.values())


_ITEM_START = re.compile(r"^(?:use|let|declare|template|group|version)\b", re.MULTILINE)


def _item_start(text: str, offset: int) -> int:
    """Where the top-level statement around ``offset`` starts (a keyword at column 0), so a
    completion parses one statement, not the whole file."""
    start = 0
    for match in _ITEM_START.finditer(text, max(0, offset - 20_000), offset):
        start = match.start()
    return start


_LINE_STRING = re.compile(r'"(?:[^"\\]|\\.)*(")?')


def _string_completions(result: CheckResult | None, text: str,
                        offset: int) -> list[Completion] | None:
    """Inside a string: files after `use "`, time zones after `schedule "..." in "`; None when
    ``offset`` is not inside a string."""
    line_start = text.rfind("\n", 0, offset) + 1
    line = text[line_start:offset]
    if line.lstrip().startswith("#"):
        return None
    matches = list(_LINE_STRING.finditer(line))
    if not matches or matches[-1].end() != len(line) or matches[-1].group(1) is not None:
        return None
    opening = matches[-1].start()
    typed = line[opening + 1:]
    before = line[:opening].split()
    if before[-1:] == ["use"]:
        return _file_completions(result, typed)
    if before[-1:] == ["in"] and "schedule" in before:
        return [Completion(zone, "value", "time zone") for zone in v.zone_names()
                if zone.lower().startswith(typed.lower())][:500]
    return []


def _file_completions(result: CheckResult | None, typed: str) -> list[Completion]:
    if result is None or result.parsed.path is None:
        return []
    here = result.parsed.path.parent
    root = project_root(result.parsed.path)
    items = []
    for path in sorted(root.rglob("*.route")):
        if path == result.parsed.path or ".venv" in path.parts or "node_modules" in path.parts:
            continue
        relative = Path(os.path.relpath(path, here)).as_posix()
        if relative.startswith(typed):
            items.append(Completion(relative, "module", "module file"))
    return items[:500]


def _context(tokens) -> list[str]:
    """The stack of open blocks at the cursor, e.g. ['group', 'routing', 'filter']."""
    stack: list[str] = []
    opener = None
    for token in tokens:
        kind = token.type
        if kind in ("GROUP", "ROUTING", "FILTER", "INVENTORY", "UNFILLED", "TEMPLATE", "RULE",
                    "OPTIMIZE"):
            opener = kind.lower()
        elif kind == "LBRACE":
            stack.append(opener or "block")
            opener = None
        elif kind == "RBRACE" and stack:
            stack.pop()
    return stack


def _name_completions(result: CheckResult | None, tokens, context: list[str]) -> list[Completion]:
    last = tokens[-1].type if tokens else None
    block = context[-1] if context else None
    if last == "USE":
        return [Completion(m, "module") for m in stdlib_modules()]
    if last == "DECLARE":
        return [Completion(k, "keyword", "declaration kind") for k in v.ID_KINDS]
    if last == "ASSIGN":
        return [Completion("single", "keyword", documentation=v.KEYWORDS["assign"]),
                Completion("partial", "keyword", documentation=v.KEYWORDS["assign"])]
    if last == "EXTENDS":
        names = result.scope.templates if result else {}
        return [Completion(name, "template", "template") for name in sorted(names)]
    if last in ("BY", "COMMA") and _in_sort(tokens):
        table = v.INVENTORY_SORTS if block in ("rule", "template") else v.ORDER_SORTS
        return [Completion(s.name, "field", f"{s.level} sort", s.doc) for s in table.values()]
    value_position = last in ("EQ", "NE", "LT", "LE", "GT", "GE", "IN", "WITHIN", "AFTER",
                              "QUEUE", "ASSIGN_OP", "LBRACKET", "STORE") or (
        last == "COMMA" and _in_list(tokens))
    if value_position:
        return _value_completions(result, _expected_kind(tokens))
    if block == "optimize":
        return _optimize_completions(tokens)
    if block == "filter":
        return [Completion(f.name, "field", f"order field ({f.value})", f.doc)
                for f in v.ORDER_FIELDS.values()]
    if block == "inventory":
        # `rejected` is written after `not` (`not rejected within 7 days`), the others alone
        negated = last == "NOT"
        return [Completion(f.name, "field", f"inventory field ({f.value})", f.doc)
                for f in v.INVENTORY_FIELDS.values()
                if (v.RECENCY[0] in f.operators) == negated]
    return []


def _optimize_completions(tokens) -> list[Completion]:
    """In an `optimize` block: the words a setting takes after its name, else the settings
    not yet given."""
    last = tokens[-1] if tokens else None
    before = tokens[-2] if len(tokens) >= 2 else None
    if last is not None and last.type == "NAME" and last.value in OPTIMIZE_SETTINGS and (
            before is None or before.type in ("LBRACE", "RBRACE") or before.line != last.line):
        spec = OPTIMIZE_SETTINGS[last.value]
        return [Completion(word, "value", f"{spec.name} value", spec.doc) for word in spec.words]
    given = set()
    for token in reversed(tokens):
        if token.type == "LBRACE":
            break
        given.add(token.value)
    return [Completion(s.name, "keyword", "optimize setting", f"{s.doc} Example: `{s.example}`")
            for s in OPTIMIZE_SETTINGS.values() if s.name not in given]


def _in_sort(tokens) -> bool:
    for token in reversed(tokens):
        if token.type == "SORT":
            return True
        if token.type not in ("BY", "COMMA", "NAME", "ASC", "DESC", "NULLS", "FIRST", "LAST"):
            return False
    return False


def _in_list(tokens) -> bool:
    depth = 0
    for token in reversed(tokens):
        if token.type == "RBRACKET":
            depth += 1
        elif token.type == "LBRACKET":
            if depth == 0:
                return True
            depth -= 1
        elif token.type in ("LBRACE", "RBRACE"):
            return False
    return False


def _expected_kind(tokens) -> str | None:
    """The id kind or measure expected at a value position, from the condition's field."""
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        if token.type == "QUEUE":
            return "queue"
        if token.type in ("AFTER", "WITHIN"):
            return "days"
        if token.type in ("LET", "STORE", "LBRACE", "RBRACE"):
            return None
        if token.type == "NAME" and index + 1 < len(tokens) and tokens[index + 1].type in (
                "EQ", "NE", "LT", "LE", "GT", "GE", "IN", "NOT", "WITHIN"):
            spec = v.ORDER_FIELDS.get(token.value) or v.INVENTORY_FIELDS.get(token.value)
            return spec.value if spec else None
    return None


def _value_completions(result: CheckResult | None, kind: str | None) -> list[Completion]:
    if result is None:
        return []
    if kind == "promise":  # `delivery_date <= promise_date` compares with one word only
        return [Completion("promise_date", "value", "the item's promised date",
                           v.INVENTORY_FIELDS["delivery_date"].doc)]
    items = []
    if kind is None or kind in v.ID_KINDS:
        for name, definitions in sorted(result.scope.catalog.items()):
            for definition in definitions:
                if kind is None or definition.id_kind == kind:
                    items.append(Completion(name, "value", definition.id_kind or "",
                                            definition.doc or ""))
    for name, definition in sorted(result.scope.constants.items()):
        items.append(Completion(name, "constant", "constant",
                                definition.where.source.slice(definition.node.span)))
    if kind == "distance":
        items.append(Completion("mi", "unit", "miles"))
        items.append(Completion("km", "unit", "kilometres"))
    if kind == "transit":
        items.append(Completion("days", "unit", "days"))
    return items


def _operator_completions(tokens, context, accepts) -> list[Completion]:
    field_name = tokens[-1].value if tokens and tokens[-1].type == "NAME" else None
    level = "inventory" if context and context[-1] == "inventory" else "order"
    spec = v.field_spec(field_name, level) if field_name else None
    operators = spec.operators if spec else v.ALL_OPERATORS
    items = [Completion(op, "operator", v.OPERATOR_DOCS[op]) for op in operators]
    if spec and spec.name == "promise_date":
        items.append(Completion("within", "keyword", documentation=v.KEYWORDS["within"]))
    return items


def _fallback_completions(result: CheckResult | None) -> list[Completion]:
    """Earlier syntax errors stop the incremental parse: offer names in scope."""
    return _value_completions(result, None)


# ---- outline, folding, semantic tokens, formatting ----------------------------------------------

@dataclass
class Symbol:
    name: str
    kind: str  # group | routing | rule | constant | template | declare
    span: Span
    selection: Span
    children: list[Symbol] = field(default_factory=list)


def document_symbols(module: n.Module) -> list[Symbol]:
    symbols = []
    for item in module.items:
        if isinstance(item, n.Group):
            group = Symbol(item.name.value, "group", item.span, item.name.span)
            for member in item.members:
                if isinstance(member, n.Routing):
                    routing = Symbol(member.name.value, "routing", member.span, member.name.span)
                    routing.children = [Symbol(r.name.value, "rule", r.span, r.name.span)
                                        for r in member.members if isinstance(r, n.Rule)]
                    group.children.append(routing)
            symbols.append(group)
        elif isinstance(item, n.Let):
            symbols.append(Symbol(item.name.name, "constant", item.span, item.name.span))
        elif isinstance(item, n.Template):
            symbols.append(Symbol(item.name.name, "template", item.span, item.name.span))
        elif isinstance(item, n.Version):
            symbols.append(Symbol(item.label.value, "version", item.span, item.label.span))
        elif isinstance(item, n.Declare):
            declare = Symbol(item.kind.name, "declare", item.span, item.kind.span)
            declare.children = [Symbol(e.name.name, "declared", e.span, e.name.span)
                                for e in item.entries]
            symbols.append(declare)
    return symbols


def folding_ranges(source: SourceFile, module: n.Module) -> list[tuple[int, int]]:
    """(start line, end line), 1-based, for blocks and runs of comment lines."""
    ranges = set()
    for node in n.walk(module):
        if isinstance(node, (n.Group, n.Routing, n.Rule, n.Template, n.Filter, n.Inventory,
                             n.Unfilled, n.Declare)):
            start = source.position(node.span.start).line
            end = source.position(node.span.end).line
            if end > start:
                ranges.add((start, end))
    run_start = previous = None
    for comment in module.comments:
        line = source.position(comment.span.start).line
        if previous is not None and line == previous + 1:
            previous = line
            continue
        if run_start is not None and previous > run_start:
            ranges.add((run_start, previous))
        run_start = previous = line
    if run_start is not None and previous > run_start:
        ranges.add((run_start, previous))
    return sorted(ranges)


TOKEN_TYPES = ["keyword", "comment", "string", "number", "operator", "property", "variable",
               "enumMember", "function", "namespace"]


def semantic_tokens(result: CheckResult) -> list[tuple[int, int, str]]:
    """(offset, length, token type) for every token, in document order."""
    source = result.parsed.source
    module = result.parsed.module
    roles: dict[int, str] = {}
    for node in n.walk(module):
        if isinstance(node, n.Condition):
            roles[node.field.span.start] = "property"
        elif isinstance(node, n.SortKey):
            roles[node.field.span.start] = "property"
        elif isinstance(node, n.Template):
            roles[node.name.span.start] = "function"
        elif isinstance(node, n.Let):
            roles[node.name.span.start] = "variable"
        elif isinstance(node, n.Declared):
            roles[node.name.span.start] = "enumMember"
    for reference in result.references:
        if reference.where.source is source:
            kind = reference.definition.kind
            roles[reference.where.span.start] = {"constant": "variable", "template": "function",
                                                 "declared": "enumMember",
                                                 "module": "namespace"}[kind]
    keywords = set(keyword_terminals().values())
    tokens = []
    for match in _TOKEN.finditer(source.text):
        kind = match.lastgroup
        start, length = match.start(), match.end() - match.start()
        if kind == "word":
            role = roles.get(start)
            if role is None and match.group() in keywords:
                role = "keyword"
            if role is None:
                continue
            kind = role
        elif kind == "op":
            kind = "operator"
        tokens.append((start, length, kind))
    return tokens


def format_document(result: CheckResult) -> str | None:
    """The formatted text, or None when the file has syntax errors."""
    if result.parsed.syntax_diagnostics:
        return None
    return format_module(result.parsed.module, result.parsed.source)
