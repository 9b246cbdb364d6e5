"""Diagnostics: problems as values, collected by every stage and rendered in one place.

The CLI, the language server and the tests all consume :class:`Diagnostic` objects; only the
rendering differs (text for terminals, JSON for tools, LSP ranges for editors).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .errorcodes import CODES, Severity
from .source import SourceFile, Span


@dataclass(frozen=True, slots=True)
class Fix:
    """A suggested edit: replace ``span`` with ``replacement`` (an LSP quick fix)."""

    title: str
    span: Span
    replacement: str


MAX_MESSAGE = 300


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    source: SourceFile
    span: Span
    hint: str | None = None
    fixes: tuple[Fix, ...] = field(default=())
    severity: Severity | None = None

    def __post_init__(self) -> None:
        # Messages quote names from the input; a hostile 1 MB name must not make a 1 MB line.
        if len(self.message) > MAX_MESSAGE:
            object.__setattr__(self, "message", self.message[: MAX_MESSAGE - 3] + "...")
        if self.hint is not None and len(self.hint) > MAX_MESSAGE:
            object.__setattr__(self, "hint", self.hint[: MAX_MESSAGE - 3] + "...")

    @property
    def level(self) -> Severity:
        return self.severity or CODES[self.code].severity

    @property
    def is_error(self) -> bool:
        return self.level is Severity.ERROR

    def sort_key(self) -> tuple:
        return (self.source.name, self.span.start, self.span.end, self.code, self.message)

    def to_json(self) -> dict:
        start = self.source.position(self.span.start)
        end = self.source.position(self.span.end)
        return {
            "file": self.source.name,
            "line": start.line,
            "column": start.column,
            "end_line": end.line,
            "end_column": end.column,
            "severity": self.level.value,
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "fixes": [
                {"title": fix.title, "replacement": fix.replacement,
                 "start": fix.span.start, "end": fix.span.end}
                for fix in self.fixes
            ],
        }


# A file shows at most this many diagnostics, then one RT199 line counting the rest: past a few
# hundred, more errors help nobody and cost the editor time.
MAX_DIAGNOSTICS = 200
_OMITTED = "RT199"


def omitted_diagnostic(source: SourceFile, count: int, at: int | None = None) -> Diagnostic:
    offset = len(source.text) if at is None else at
    return Diagnostic(_OMITTED, f"and {count} more problem{'' if count == 1 else 's'} in this "
                      f"file (showing the first {MAX_DIAGNOSTICS})", source, Span(offset, offset))


def _omitted_count(diagnostic: Diagnostic) -> int:
    return int(diagnostic.message.split()[1])


def sort_diagnostics(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Sorted, without duplicates, and capped at :data:`MAX_DIAGNOSTICS` per file."""
    unique: dict[tuple, Diagnostic] = {}
    omitted: dict[str, int] = {}
    for diagnostic in diagnostics:
        if diagnostic.code == _OMITTED:
            name = diagnostic.source.name
            omitted[name] = omitted.get(name, 0) + _omitted_count(diagnostic)
        else:
            unique.setdefault(diagnostic.sort_key(), diagnostic)
    result: list[Diagnostic] = []
    shown: dict[str, int] = {}
    sources: dict[str, SourceFile] = {}
    for key in sorted(unique):
        diagnostic = unique[key]
        name = diagnostic.source.name
        sources[name] = diagnostic.source
        if shown.get(name, 0) >= MAX_DIAGNOSTICS:
            omitted[name] = omitted.get(name, 0) + 1
            continue
        shown[name] = shown.get(name, 0) + 1
        result.append(diagnostic)
    for name, count in sorted(omitted.items()):
        source = sources.get(name) or next(d.source for d in diagnostics if d.source.name == name)
        result.append(omitted_diagnostic(source, count))
    return result


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``), so that nothing taken from the
    input can move the cursor, recolour the terminal or forge a line."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xff
                        else f"\\x{ord(m.group()):02x}", text)


def render_text(diagnostic: Diagnostic) -> str:
    """``file:line:col: error[RT101]: message``, the source line underlined, then the hint."""
    source = diagnostic.source
    start = source.position(diagnostic.span.start)
    end = source.position(max(diagnostic.span.start, diagnostic.span.end))
    header = printable(f"{source.name}:{start.line}:{start.column}: "
                       f"{diagnostic.level.value}[{diagnostic.code}]: {diagnostic.message}")
    lines = [header]
    if source.text:
        # control characters shown as one replacement character each, so the caret lines up
        text = _CONTROL.sub("\ufffd", source.line_text(start.line))
        gutter = str(start.line)
        pad = " " * len(gutter)
        width = (end.column - start.column) if end.line == start.line else len(text) - start.column + 1
        width = max(1, width)
        prefix = "".join(ch if ch == "\t" else " " for ch in text[: start.column - 1])
        lines.append(f"{pad} |")
        lines.append(f"{gutter} | {text}")
        lines.append(f"{pad} | {prefix}^{'~' * (width - 1)}")
    if diagnostic.hint:
        lines.append(printable(f"  = hint: {diagnostic.hint}"))
    return "\n".join(lines)


def render_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2) + "\n"


def summary(diagnostics: list[Diagnostic]) -> str:
    errors = sum(1 for d in diagnostics if d.level is Severity.ERROR)
    warnings = sum(1 for d in diagnostics if d.level is Severity.WARNING)

    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')}"
