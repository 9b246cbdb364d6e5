"""The language server (pygls 2, stdio): a thin adapter from LSP to :mod:`.features`.

It writes nothing to stdout but protocol messages (logs go to stderr), and a failure inside a
feature is logged and answered with an empty result, never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import wraps
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from .. import __version__
from ..diagnostics import Diagnostic
from ..errorcodes import Severity
from . import features as f

log = logging.getLogger("routing_dsl.lsp")
DEBOUNCE_SECONDS = 0.15

_SEVERITY = {Severity.ERROR: types.DiagnosticSeverity.Error,
             Severity.WARNING: types.DiagnosticSeverity.Warning,
             Severity.INFO: types.DiagnosticSeverity.Information}
_SYMBOL = {"group": types.SymbolKind.Namespace, "routing": types.SymbolKind.Class,
           "rule": types.SymbolKind.Method, "constant": types.SymbolKind.Constant,
           "template": types.SymbolKind.Function, "declare": types.SymbolKind.Enum,
           "declared": types.SymbolKind.EnumMember}
_COMPLETION = {"keyword": types.CompletionItemKind.Keyword,
               "field": types.CompletionItemKind.Field,
               "operator": types.CompletionItemKind.Operator,
               "value": types.CompletionItemKind.EnumMember,
               "constant": types.CompletionItemKind.Constant,
               "template": types.CompletionItemKind.Function,
               "module": types.CompletionItemKind.Module,
               "unit": types.CompletionItemKind.Unit}
LEGEND = types.SemanticTokensLegend(token_types=f.TOKEN_TYPES, token_modifiers=[])


def uri_to_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def path_to_uri(path: str | Path) -> str:
    return Path(path).resolve().as_uri()


class RoutingLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("routing-dsl", __version__)
        self.project = f.Project()
        self.pending: dict[str, asyncio.Task] = {}

    def document(self, uri: str) -> TextDocument:
        return self.workspace.get_text_document(uri)

    def check(self, uri: str):
        document = self.document(uri)
        return self.project.check(uri_to_path(uri), document.source)

    def range(self, document: TextDocument, start: int, end: int) -> types.Range:
        return types.Range(document.client_position_at_offset(start),
                           document.client_position_at_offset(end))

    def lsp_diagnostic(self, document: TextDocument, diagnostic: Diagnostic) -> types.Diagnostic:
        message = diagnostic.message + (f"\n{diagnostic.hint}" if diagnostic.hint else "")
        return types.Diagnostic(
            range=self.range(document, diagnostic.span.start, diagnostic.span.end),
            message=message, severity=_SEVERITY[diagnostic.level], code=diagnostic.code,
            source="routing-dsl")

    def publish_all(self, changed: str) -> None:
        """Diagnostics for the changed document first, then for the other open documents,
        which may import it."""
        self.publish(changed)
        for uri in list(self.workspace.text_documents):
            if uri != changed and uri.endswith(".route"):
                self.publish(uri)

    def publish(self, uri: str) -> None:
        document = self.document(uri)
        result = self.check(uri)
        diagnostics = [self.lsp_diagnostic(document, d) for d in f.own_diagnostics(result)]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, diagnostics=diagnostics, version=document.version))


server = RoutingLanguageServer()


def safely(default=None):
    """Log a failing handler and answer ``default``: broken text must never kill the server."""
    def decorate(handler):
        @wraps(handler)
        def wrapper(ls, params):
            try:
                return handler(ls, params)
            except Exception:  # noqa: BLE001 - the editor session must survive any bug
                log.exception("%s failed", handler.__name__)
                return default
        return wrapper
    return decorate


def offset_of(ls: RoutingLanguageServer, uri: str, position: types.Position) -> int:
    return ls.document(uri).offset_at_position(position)


@server.feature(types.INITIALIZED)
def initialized(ls: RoutingLanguageServer, params) -> None:
    ls.project.roots = [Path(folder.uri and uri_to_path(folder.uri))
                        for folder in (ls.workspace.folders or {}).values()]
    if not ls.project.roots and ls.workspace.root_path:
        ls.project.roots = [Path(ls.workspace.root_path)]


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
@safely()
def did_open(ls: RoutingLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.project.open_documents[uri_to_path(uri).resolve()] = params.text_document.text
    ls.publish(uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: RoutingLanguageServer, params: types.DidChangeTextDocumentParams):
    uri = params.text_document.uri
    ls.project.open_documents[uri_to_path(uri).resolve()] = ls.document(uri).source
    previous = ls.pending.pop(uri, None)
    if previous is not None:
        previous.cancel()

    async def later() -> None:
        await asyncio.sleep(DEBOUNCE_SECONDS)
        try:
            ls.publish_all(uri)
        except Exception:  # noqa: BLE001
            log.exception("diagnostics failed")

    ls.pending[uri] = asyncio.ensure_future(later())


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
@safely()
def did_save(ls: RoutingLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
@safely()
def did_close(ls: RoutingLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.project.open_documents.pop(uri_to_path(uri).resolve(), None)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[" ", "[", ","]))
@safely(default=None)
def completion(ls: RoutingLanguageServer, params: types.CompletionParams):
    uri = params.text_document.uri
    document = ls.document(uri)
    result = ls.check(uri)
    items = f.complete(result, document.source, offset_of(ls, uri, params.position))
    return types.CompletionList(is_incomplete=False, items=[
        types.CompletionItem(label=item.label, kind=_COMPLETION[item.kind],
                             detail=item.detail or None,
                             documentation=types.MarkupContent(
                                 kind=types.MarkupKind.Markdown, value=item.documentation)
                             if item.documentation else None)
        for item in items])


@server.feature(types.TEXT_DOCUMENT_HOVER)
@safely()
def hover(ls: RoutingLanguageServer, params: types.HoverParams):
    uri = params.text_document.uri
    found = f.hover(ls.check(uri), offset_of(ls, uri, params.position))
    if found is None:
        return None
    text, span = found
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                       range=ls.range(ls.document(uri), span.start, span.end))


def _location(ls: RoutingLanguageServer, path: str, start: int, end: int) -> types.Location:
    uri = path_to_uri(path)
    # pygls reads documents that are not open from disk, for the position conversion
    return types.Location(uri=uri, range=ls.range(ls.document(uri), start, end))


def _target(ls: RoutingLanguageServer, params) -> f.Definition | None:
    """The constant, template, id or module named at the request's position."""
    uri = params.text_document.uri
    return f.definition_at(ls.check(uri), offset_of(ls, uri, params.position))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
@safely()
def definition(ls: RoutingLanguageServer, params: types.DefinitionParams):
    target = _target(ls, params)
    if target is None:
        return None
    span = target.where.span
    return _location(ls, str(Path(target.where.source.name).resolve()), span.start, span.end)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
@safely(default=[])
def references(ls: RoutingLanguageServer, params: types.ReferenceParams):
    target = _target(ls, params)
    if target is None:
        return []
    found = f.find_references(ls.project.check_all(), target,
                              params.context.include_declaration)
    return [_location(ls, path, span.start, span.end) for path, span in found]


@server.feature(types.TEXT_DOCUMENT_RENAME)
@safely()
def rename(ls: RoutingLanguageServer, params: types.RenameParams):
    target = _target(ls, params)
    if target is None:
        return None
    edits = f.rename(ls.project.check_all(), target, params.new_name)
    if isinstance(edits, str):
        ls.window_show_message(types.ShowMessageParams(types.MessageType.Warning, edits))
        return None
    changes = {}
    for path, spans in edits.items():
        location_uri = path_to_uri(path)
        changes[location_uri] = [
            types.TextEdit(range=_location(ls, path, span.start, span.end).range,
                           new_text=text) for span, text in spans]
    return types.WorkspaceEdit(changes=changes)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@safely(default=[])
def document_symbol(ls: RoutingLanguageServer, params: types.DocumentSymbolParams):
    uri = params.text_document.uri
    document = ls.document(uri)
    result = ls.check(uri)

    def convert(symbol: f.Symbol) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=symbol.name or "(unnamed)", kind=_SYMBOL[symbol.kind],
            range=ls.range(document, symbol.span.start, symbol.span.end),
            selection_range=ls.range(document, symbol.selection.start, symbol.selection.end),
            children=[convert(child) for child in symbol.children])
    return [convert(symbol) for symbol in f.document_symbols(result.parsed.module)]


@server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
@safely(default=[])
def folding_range(ls: RoutingLanguageServer, params: types.FoldingRangeParams):
    result = ls.check(params.text_document.uri)
    return [types.FoldingRange(start_line=start - 1, end_line=end - 1)
            for start, end in f.folding_ranges(result.parsed.source, result.parsed.module)]


@server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
@safely(default=types.SemanticTokens(data=[]))
def semantic_tokens(ls: RoutingLanguageServer, params: types.SemanticTokensParams):
    uri = params.text_document.uri
    document = ls.document(uri)
    data: list[int] = []
    last_line = last_char = 0
    for offset, length, kind in f.semantic_tokens(ls.check(uri)):
        start = document.client_position_at_offset(offset)
        end = document.client_position_at_offset(offset + length)
        if end.line != start.line:
            continue
        delta_line = start.line - last_line
        delta_char = start.character - (last_char if delta_line == 0 else 0)
        data += [delta_line, delta_char, end.character - start.character,
                 f.TOKEN_TYPES.index(kind), 0]
        last_line, last_char = start.line, start.character
    return types.SemanticTokens(data=data)


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
@safely(default=None)
def formatting(ls: RoutingLanguageServer, params: types.DocumentFormattingParams):
    uri = params.text_document.uri
    document = ls.document(uri)
    formatted = f.format_document(ls.check(uri))
    if formatted is None or formatted == document.source:
        return []
    return [types.TextEdit(range=ls.range(document, 0, len(document.source)),
                           new_text=formatted)]


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
@safely(default=[])
def code_action(ls: RoutingLanguageServer, params: types.CodeActionParams):
    uri = params.text_document.uri
    document = ls.document(uri)
    start = document.offset_at_position(params.range.start)
    end = document.offset_at_position(params.range.end)
    actions = []
    for diagnostic in f.own_diagnostics(ls.check(uri)):
        if diagnostic.span.end < start or diagnostic.span.start > end:
            continue
        for fix in diagnostic.fixes:
            edit = types.TextEdit(range=ls.range(document, fix.span.start, fix.span.end),
                                  new_text=fix.replacement)
            actions.append(types.CodeAction(
                title=fix.title, kind=types.CodeActionKind.QuickFix,
                diagnostics=[ls.lsp_diagnostic(document, diagnostic)],
                edit=types.WorkspaceEdit(changes={uri: [edit]}), is_preferred=True))
    return actions


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="routing-lsp %(levelname)s %(message)s")
    server.start_io()
