"""Formatter: AST (+ comments) -> canonical source text.

One statement per line, two-space indentation, single spaces around operators, at most one
blank line where the author left one (always one before a top-level group or template).
Comments stay where they were: on their own line before the statement that follows them, or
at the end of the line they ended. Formatting is idempotent and never changes the AST.
"""

from __future__ import annotations

from . import nodes as n
from .source import SourceFile

INDENT = "  "


class _Printer:
    def __init__(self, source: SourceFile, comments: tuple[n.Comment, ...]):
        self.text = source.text
        self.source = source
        self.comments = list(comments)
        self.lines: list[str] = []
        self.depth = 0
        self.last_end = 0  # source offset where the last emitted thing ended

    # ---- low level ----
    def _blank_between(self, start: int, end: int) -> bool:
        return self.text.count("\n", start, end) >= 2

    def _add(self, line: str) -> None:
        self.lines.append(f"{INDENT * self.depth}{line}" if line else "")

    def flush_comments(self, before: int, *, first_in_block: bool = False,
                       force_blank: bool = False) -> None:
        while self.comments and self.comments[0].span.start < before:
            comment = self.comments.pop(0)
            if self.lines and not first_in_block and (
                    force_blank or self._blank_between(self.last_end, comment.span.start)):
                if self.lines[-1] != "":
                    self._add("")
            first_in_block = force_blank = False
            self._add(comment.text.rstrip())
            self.last_end = comment.span.end

    def line(self, text: str, start: int, end: int, *, first_in_block: bool = False,
             force_blank: bool = False) -> None:
        if self.comments and self.comments[0].span.start < start:
            self.flush_comments(start, first_in_block=first_in_block, force_blank=force_blank)
            first_in_block = force_blank = False
        if self.lines and not first_in_block and (
                force_blank or self._blank_between(self.last_end, start)):
            if self.lines[-1] != "":
                self._add("")
        self._add(text)
        self.last_end = end
        self.trailing(end)

    def trailing(self, end: int) -> None:
        """Attach a comment that shares the source line where ``end`` falls."""
        if not self.comments:
            return
        comment = self.comments[0]
        line_end = self.text.find("\n", end)
        line_end = len(self.text) if line_end < 0 else line_end
        if comment.span.start <= line_end and not self.text[end:comment.span.start].strip():
            self.comments.pop(0)
            self.lines[-1] += f"  {comment.text.rstrip()}"
            self.last_end = comment.span.end

    def open_brace(self, after: int) -> int:
        return self.text.find("{", after)

    def stmt(self, text: str, node: n.Node, index: int) -> None:
        self.line(text, node.span.start, node.span.end, first_in_block=index == 0)

    # ---- module ----
    def module(self, module: n.Module) -> str:
        previous = None
        for item in module.items:
            force = previous is not None and (
                isinstance(item, (n.Group, n.Template)) or type(item) is not type(previous))
            self.item(item, force)
            previous = item
        self.flush_comments(len(self.text) + 1)
        return "\n".join(self.lines).rstrip("\n") + "\n" if self.lines else ""

    def item(self, item, force: bool) -> None:
        if isinstance(item, n.Use):
            target = _string(item.target) if item.is_path else item.target
            self.line(f"use {target}", item.span.start, item.span.end, force_blank=force)
        elif isinstance(item, n.Let):
            self.line(f"let {item.name.name} = {value(item.value)}", item.span.start,
                      item.span.end, force_blank=force)
        elif isinstance(item, n.Declare):
            self.declare(item, force)
        elif isinstance(item, n.Version):
            self.line(f"version {_string(item.label.value)}", item.span.start, item.span.end,
                      force_blank=force)
        elif isinstance(item, n.Template):
            self.line(f"template {item.name.name} {{", item.span.start,
                      self.open_brace(item.name.span.end) + 1, force_blank=force)
            self.body_members(item.body, item.span)
        elif isinstance(item, n.Group):
            self.line(f"group {_string(item.name.value)} for store {value(item.store)} {{",
                      item.span.start, self.open_brace(item.store.span.end) + 1,
                      force_blank=force)
            self.depth += 1
            for index, member in enumerate(item.members):
                if isinstance(member, n.Schedule):
                    self.stmt(schedule(member), member, index)
                else:
                    self.routing(member, index)
            self.close(item)

    def close(self, node: n.Node) -> None:
        close = node.span.end - 1
        opened = self.lines[-1].endswith("{")
        self.flush_comments(close, first_in_block=opened)
        self.depth -= 1
        if self.lines[-1].endswith("{") and opened:
            self.lines[-1] += "}"
        else:
            self._add("}")
        self.last_end = node.span.end
        self.trailing(node.span.end)

    def declare(self, item: n.Declare, force: bool) -> None:
        entries = [f"{e.name.name}" + (f" {_string(e.doc)}" if e.doc is not None else "")
                   for e in item.entries]
        if len(entries) == 1:
            self.line(f"declare {item.kind.name} {entries[0]}", item.span.start, item.span.end,
                      force_blank=force)
            return
        self.line(f"declare {item.kind.name}", item.span.start, item.kind.span.end,
                  force_blank=force)
        self.depth += 1
        for index, (entry, text) in enumerate(zip(item.entries, entries, strict=True)):
            comma = "," if index < len(entries) - 1 else ""
            end = entry.span.end
            if comma:
                end = self.text.find(",", end) + 1 or end
            self.line(text + comma, entry.span.start, end, first_in_block=index == 0)
        self.depth -= 1

    def routing(self, routing: n.Routing, index: int) -> None:
        status = f" {routing.status.name}{window(routing.window)}" if routing.status else ""
        after = (routing.window or routing.status or routing.name).span.end
        self.line(f"routing {_string(routing.name.value)}{status} {{", routing.span.start,
                  self.open_brace(after) + 1, first_in_block=index == 0)
        self.depth += 1
        for position, member in enumerate(routing.members):
            if isinstance(member, n.Filter):
                self.condition_block("filter", member, member.conditions, position)
            elif isinstance(member, n.Sort):
                self.stmt(sort(member), member, position)
            elif isinstance(member, n.Optimize):
                self.line("optimize {", member.span.start, self.open_brace(member.span.start) + 1,
                          first_in_block=position == 0)
                self.depth += 1
                for i, setting in enumerate(member.settings):
                    self.stmt(f"{setting.name.name} {value(setting.value)}", setting, i)
                self.close(member)
            else:
                self.rule(member, position)
        self.close(routing)

    def condition_block(self, keyword: str, node: n.Node, members, index: int) -> None:
        self.line(f"{keyword} {{", node.span.start, self.open_brace(node.span.start) + 1,
                  first_in_block=index == 0)
        self.depth += 1
        for position, member in enumerate(members):
            text = condition(member) if isinstance(member, n.Condition) else flag(member)
            self.stmt(text, member, position)
        self.close(node)

    def rule(self, rule: n.Rule, index: int) -> None:
        header = f"rule {_string(rule.name.value)}"
        after = rule.name.span.end
        if rule.status:
            header += f" {rule.status.name}{window(rule.window)}"
            after = (rule.window or rule.status).span.end
        if rule.extends:
            header += f" extends {rule.extends.name}"
            after = rule.extends.span.end
        if rule.body is None:
            self.stmt(header, rule, index)
            return
        self.line(f"{header} {{", rule.span.start, self.open_brace(after) + 1,
                  first_in_block=index == 0)
        self.body_members(rule.body, rule.span)

    def body_members(self, body, span) -> None:
        self.depth += 1
        for position, member in enumerate(body):
            if isinstance(member, n.Assign):
                self.stmt(f"assign {member.mode.name}", member, position)
            elif isinstance(member, n.Inventory):
                self.condition_block("inventory", member, member.members, position)
            elif isinstance(member, n.Sort):
                self.stmt(sort(member), member, position)
            elif isinstance(member, n.Unfilled):
                self.line("when unfilled {", member.span.start,
                          self.open_brace(member.span.start) + 1, first_in_block=position == 0)
                self.depth += 1
                for i, action_node in enumerate(member.actions):
                    self.stmt(action(action_node), action_node, i)
                self.close(member)
        self.close(n.Node(span=span))


# ---- single-line renderings ----

def _string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def value(node) -> str:
    if isinstance(node, n.NameRef):
        return node.name
    if isinstance(node, n.StringLit):
        return _string(node.value)
    if isinstance(node, n.NumberLit):
        return node.text + (f" {node.unit}" if node.unit else "")
    if isinstance(node, n.ListLit):
        return "[" + ", ".join(value(item) for item in node.items) + "]"
    raise ValueError("cannot format a file with syntax errors")


def window(node: n.Window | None) -> str:
    if node is None:
        return ""
    text = f" from {_string(node.start.value)}" if node.start is not None else ""
    return text + (f" until {_string(node.end.value)}" if node.end is not None else "")


def condition(node: n.Condition) -> str:
    if node.value is None:
        return f"{node.field.name} {node.op}"
    if node.op == "not within":
        return f"not {node.field.name} within {value(node.value)}"
    op = "within" if node.written_within else node.op
    return f"{node.field.name} {op} {value(node.value)}"


def flag(node: n.Flag) -> str:
    return node.name if node.value is None else f"{node.name} {value(node.value)}"


def sort(node: n.Sort) -> str:
    keys = []
    for key in node.keys:
        text = key.field.name + (" desc" if key.descending else "")
        if key.nulls:
            text += f" nulls {key.nulls}"
        keys.append(text)
    return "sort by " + ", ".join(keys)


def schedule(node: n.Schedule) -> str:
    text = f"schedule {_string(node.cron.value)}"
    if node.timezone is not None:
        text += f" in {_string(node.timezone.value)}"
    return text + (" paused" if node.paused else "")


def action(node) -> str:
    if isinstance(node, n.NextRule):
        return "next rule"
    if isinstance(node, n.MoveToQueue):
        return "move to queue" + (f" {value(node.queue)}" if node.queue is not None else "")
    if isinstance(node, n.AutoCancel):
        return f"auto_cancel after {value(node.days)}"
    return "clear auto_cancel"


def format_module(module: n.Module, source: SourceFile) -> str:
    """Canonical text of a module that parsed without errors."""
    return _Printer(source, module.comments).module(module)
