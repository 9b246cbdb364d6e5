"""The language server (pygls 2, stdio): a thin adapter from LSP to :mod:`.features`.

It writes nothing to stdout but protocol messages (logs go to stderr), and a failure inside a
feature is logged and answered with an empty result, never a crash.

Every request is answered, whatever its params: params that do not fit the LSP types (a line
of -1 or 2^31, a negative `tabSize`, a string where a number belongs) get an InvalidParams
error naming the JSON path (:mod:`.params`), a document the editor never opened gets an
InvalidParams error, and positions beyond a line or the text are clamped to it, as the LSP
specification says.

Diagnostics are computed off the event loop, after a short debounce, in a worker thread: a
large or broken buffer never stalls requests for other documents, a newer edit supersedes an
older check (whose result is dropped), and the finished check is kept for the requests that
follow, so hover, outline or semantic tokens do not check the file again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from functools import wraps
from pathlib import Path
from urllib.parse import unquote

from lsprotocol import types
from pygls import uris
from pygls.exceptions import FeatureRequestError, JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from .. import __version__
from ..checker import CheckResult, Workspace
from ..diagnostics import Diagnostic
from ..errorcodes import Severity
from ..loader import Loader
from ..source import SourceFile
from . import features as f
from .params import CheckedProtocol

log = logging.getLogger("routing_dsl.lsp")
DEBOUNCE_SECONDS = 0.15
REQUEST_FAILED = -32803  # LSP's RequestFailed: shown to the user by the editor

_SEVERITY = {Severity.ERROR: types.DiagnosticSeverity.Error,
             Severity.WARNING: types.DiagnosticSeverity.Warning,
             Severity.INFO: types.DiagnosticSeverity.Information}
_SYMBOL = {"group": types.SymbolKind.Namespace, "routing": types.SymbolKind.Class,
           "rule": types.SymbolKind.Method, "constant": types.SymbolKind.Constant,
           "template": types.SymbolKind.Function, "declare": types.SymbolKind.Enum,
           "declared": types.SymbolKind.EnumMember, "version": types.SymbolKind.String}
_COMPLETION = {"keyword": types.CompletionItemKind.Keyword,
               "field": types.CompletionItemKind.Field,
               "operator": types.CompletionItemKind.Operator,
               "value": types.CompletionItemKind.EnumMember,
               "constant": types.CompletionItemKind.Constant,
               "template": types.CompletionItemKind.Function,
               "module": types.CompletionItemKind.Module,
               "unit": types.CompletionItemKind.Unit}
LEGEND = types.SemanticTokensLegend(token_types=f.TOKEN_TYPES, token_modifiers=[])
_TOKEN_INDEX = {kind: index for index, kind in enumerate(f.TOKEN_TYPES)}


def uri_to_path(uri: str) -> Path:
    """The file of a ``file:`` URI, percent-decoded exactly once."""
    return Path(uris.to_fs_path(uri) or uri)


def printable_uri(uri) -> str:
    text = repr(uri)
    return text if len(text) <= 120 else text[:117] + "..."


def path_to_uri(path: str | Path) -> str:
    return uris.from_fs_path(str(Path(path).resolve())) or Path(path).resolve().as_uri()


class RoutingLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("routing-dsl", __version__, protocol_cls=CheckedProtocol)
        self.project = f.Project()
        self.pending: dict[str, asyncio.Task] = {}
        self._positions: dict[int, f.Positions] = {}

    def report_server_error(self, error: Exception, source) -> None:
        """A failure outside any request (a notification pygls could not apply): in the
        editor's log of the server, not in a pop-up over the user's work. A failed request
        has had its error answer already."""
        if source is FeatureRequestError:
            return
        log.error("%s: %s", source.__name__, error)
        self.window_log_message(types.LogMessageParams(
            type=types.MessageType.Error,
            message=f"{source.__name__}: {type(error).__name__}: {error}"[:500]))

    def document(self, uri: str) -> TextDocument:
        """An open document; a request about any other is refused (reading it from disk
        would read what the editor never showed us, and make it part of the project)."""
        document = self.workspace.text_documents.get(unquote(uri)) \
            if isinstance(uri, str) else None
        if document is None:
            raise JsonRpcException(f"{printable_uri(uri)} is not open in the editor: the "
                                   "server answers for documents sent with didOpen",
                                   code=JsonRpcInvalidParams.CODE)
        return document

    def check(self, uri: str) -> CheckResult:
        document = self.document(uri)
        return self.project.check(uri_to_path(uri), document.source)

    def positions(self, source: SourceFile) -> f.Positions:
        """Offset conversion for one checked text (kept while the text is current)."""
        found = self._positions.get(id(source))
        if found is None or found.text is not source.text:
            if len(self._positions) > 64:
                self._positions.clear()
            found = self._positions[id(source)] = f.Positions(source)
        return found

    def range(self, source: SourceFile, start: int, end: int) -> types.Range:
        positions = self.positions(source)
        return types.Range(types.Position(*positions.position(start)),
                           types.Position(*positions.position(end)))

    def offset(self, result: CheckResult, position: types.Position) -> int:
        return self.positions(result.parsed.source).offset(position.line, position.character)

    def lsp_diagnostic(self, diagnostic: Diagnostic) -> types.Diagnostic:
        message = diagnostic.message + (f"\n{diagnostic.hint}" if diagnostic.hint else "")
        return types.Diagnostic(
            range=self.range(diagnostic.source, diagnostic.span.start, diagnostic.span.end),
            message=message, severity=_SEVERITY[diagnostic.level], code=diagnostic.code,
            source="routing-dsl")

    def publish_result(self, uri: str, result: CheckResult, version: int | None) -> None:
        diagnostics = [self.lsp_diagnostic(d) for d in f.own_diagnostics(result)]
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, diagnostics=diagnostics, version=version))

    def open_uris(self) -> list[str]:
        """The URIs of open documents as the editor sent them (pygls keys its table by a
        decoded form, which must not be decoded again)."""
        return [document.uri for document in self.workspace.text_documents.values()
                if document.path.endswith(".route")]

    def is_open(self, uri: str) -> bool:
        return uri in self.open_uris()

    def schedule_check(self, changed: str | None, delay: float = DEBOUNCE_SECONDS) -> None:
        """Check ``changed`` first, then every other open document (they may import it), in a
        worker thread after ``delay``; an edit arriving meanwhile cancels this round."""
        key = changed or "*"
        previous = self.pending.pop(key, None)
        if previous is not None:
            previous.cancel()
        self.pending[key] = asyncio.ensure_future(self._check_later(changed, delay))

    async def _check_later(self, changed: str | None, delay: float) -> None:
        await asyncio.sleep(delay)
        order = ([changed] if changed else []) + [u for u in self.open_uris() if u != changed]
        versions = {uri: self.document(uri).version for uri in order}
        overrides = dict(self.project.open_documents)
        generation = self.project.generation
        roots = tuple(self.project.roots)
        try:
            workspace, results = await asyncio.get_running_loop().run_in_executor(
                None, _check_documents, overrides, roots, [uri_to_path(u) for u in order])
        except Exception:  # noqa: BLE001 - the editor session must survive any bug
            log.exception("diagnostics failed")
            return
        if self.project.generation == generation:
            self.project.adopt(workspace)
        for uri, result in zip(order, results, strict=True):
            if result is None or not self.is_open(uri):
                continue
            if self.document(uri).version != versions[uri]:
                continue  # superseded by a newer edit, whose own check is on its way
            self.publish_result(uri, result, versions[uri])


def _check_documents(overrides, roots, paths) -> tuple[Workspace, list[CheckResult | None]]:
    workspace = Workspace(Loader(overrides=overrides), roots)
    results: list[CheckResult | None] = []
    for path in paths:
        try:
            results.append(workspace.check_path(path, name=str(path)))
        except Exception:  # noqa: BLE001 - an unreadable file has no diagnostics to show
            log.exception("checking %s failed", path)
            results.append(None)
    return workspace, results


server = RoutingLanguageServer()


def safely(default=None):
    """Log a failing handler and answer ``default``: broken text must never kill the server."""
    def decorate(handler):
        @wraps(handler)
        def wrapper(ls, params):
            try:
                return handler(ls, params)
            except JsonRpcException:
                raise
            except Exception as error:  # noqa: BLE001 - the session must survive any bug
                log.exception("%s failed", handler.__name__)
                # also in the editor's log of the server: a bug is visible, not silent
                ls.window_log_message(types.LogMessageParams(
                    type=types.MessageType.Error,
                    message=f"{handler.__name__} failed: {type(error).__name__}: {error}"[:500]))
                return default
        return wrapper
    return decorate


def at(ls: RoutingLanguageServer, params) -> tuple[str, CheckResult, int]:
    """The request's document, its check and the offset of its position."""
    uri = params.text_document.uri
    result = ls.check(uri)
    return uri, result, ls.offset(result, params.position)


@server.feature(types.INITIALIZED)
def initialized(ls: RoutingLanguageServer, params) -> None:
    ls.project.roots = [uri_to_path(folder.uri)
                        for folder in (ls.workspace.folders or {}).values() if folder.uri]
    if not ls.project.roots and ls.workspace.root_path:
        ls.project.roots = [Path(ls.workspace.root_path)]
    ls.project.invalidate()
    watched = ls.client_capabilities.workspace and \
        ls.client_capabilities.workspace.did_change_watched_files
    if watched and watched.dynamic_registration:
        ls.client_register_capability(types.RegistrationParams(registrations=[
            types.Registration(
                id="routing-dsl-watch", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=[
                    types.FileSystemWatcher(glob_pattern="**/*.route")]))]))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
@safely()
def did_open(ls: RoutingLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.project.set_text(uri_to_path(uri), params.text_document.text)
    ls.schedule_check(uri, delay=0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
@safely()
def did_change(ls: RoutingLanguageServer, params: types.DidChangeTextDocumentParams):
    uri = params.text_document.uri
    ls.project.set_text(uri_to_path(uri), ls.document(uri).source)
    ls.schedule_check(uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
@safely()
def did_save(ls: RoutingLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.schedule_check(params.text_document.uri, delay=0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
@safely()
def did_close(ls: RoutingLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.project.set_text(uri_to_path(uri), None)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
@safely()
def did_change_watched_files(ls: RoutingLanguageServer,
                             params: types.DidChangeWatchedFilesParams) -> None:
    """A `.route` file changed on disk (another editor, git): imports may have changed."""
    ls.project.invalidate()
    ls.schedule_check(None, delay=0)


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[" ", "[", ",", ".", '"']))
@safely(default=None)
def completion(ls: RoutingLanguageServer, params: types.CompletionParams):
    _, result, offset = at(ls, params)
    items = f.complete(result, result.parsed.source.text, offset)
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
    _, result, offset = at(ls, params)
    found = f.hover(result, offset)
    if found is None:
        return None
    text, span = found
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                       range=ls.range(result.parsed.source, span.start, span.end))


def _location(ls: RoutingLanguageServer, source: SourceFile, start: int,
              end: int) -> types.Location:
    return types.Location(uri=path_to_uri(source.name), range=ls.range(source, start, end))


def _source_of(ls: RoutingLanguageServer, path: str) -> SourceFile | None:
    try:
        return ls.project.workspace().check_path(Path(path), name=str(Path(path))).parsed.source
    except Exception:  # noqa: BLE001 - a file that vanished has no location to show
        return None


def _target(ls: RoutingLanguageServer, params) -> f.Definition | None:
    """The constant, template, id or module named at the request's position."""
    _, result, offset = at(ls, params)
    return f.definition_at(result, offset)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
@safely()
def definition(ls: RoutingLanguageServer, params: types.DefinitionParams):
    target = _target(ls, params)
    if target is None:
        return None
    span = target.where.span
    return _location(ls, target.where.source, span.start, span.end)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
@safely(default=[])
def references(ls: RoutingLanguageServer, params: types.ReferenceParams):
    target = _target(ls, params)
    if target is None:
        return []
    found = f.find_references(ls.project.check_all(), target,
                              params.context.include_declaration)
    locations = []
    for path, span in found:
        source = _source_of(ls, path)
        if source is not None:
            locations.append(_location(ls, source, span.start, span.end))
    return locations


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
@safely()
def prepare_rename(ls: RoutingLanguageServer, params: types.PrepareRenameParams):
    _, result, offset = at(ls, params)
    definition = f.definition_at(result, offset)
    refused = f.rename_target(definition, ls.project)
    if refused is not None:
        raise JsonRpcException(refused, code=REQUEST_FAILED)
    found = f.word_at(result.parsed.source.text, offset)
    if found is None:
        return None
    return types.PrepareRenamePlaceholder(
        range=ls.range(result.parsed.source, found[1].start, found[1].end),
        placeholder=found[0])


@server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
@safely()
def rename(ls: RoutingLanguageServer, params: types.RenameParams):
    target = _target(ls, params)
    refused = f.rename_target(target, ls.project)
    if refused is not None:
        raise JsonRpcException(refused, code=REQUEST_FAILED)
    edits = f.rename(ls.project.check_all(), target, params.new_name, ls.project)
    if isinstance(edits, str):
        raise JsonRpcException(edits, code=REQUEST_FAILED)
    changes = {}
    for path, spans in edits.items():
        source = _source_of(ls, path)
        if source is None:
            continue
        changes[path_to_uri(path)] = [
            types.TextEdit(range=ls.range(source, span.start, span.end), new_text=text)
            for span, text in spans]
    return types.WorkspaceEdit(changes=changes)


def _symbol(ls: RoutingLanguageServer, source: SourceFile,
            symbol: f.Symbol) -> types.DocumentSymbol:
    return types.DocumentSymbol(
        name=symbol.name or "(unnamed)", kind=_SYMBOL[symbol.kind],
        range=ls.range(source, symbol.span.start, symbol.span.end),
        selection_range=ls.range(source, symbol.selection.start, symbol.selection.end),
        children=[_symbol(ls, source, child) for child in symbol.children])


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
@safely(default=[])
def document_symbol(ls: RoutingLanguageServer, params: types.DocumentSymbolParams):
    result = ls.check(params.text_document.uri)
    source = result.parsed.source
    return [_symbol(ls, source, symbol) for symbol in f.document_symbols(result.parsed.module)]


@server.feature(types.WORKSPACE_SYMBOL)
@safely(default=[])
def workspace_symbol(ls: RoutingLanguageServer, params: types.WorkspaceSymbolParams):
    results = {str(Path(r.parsed.source.name).resolve()): r for r in ls.project.check_all()}
    symbols = []
    for path, symbol in f.workspace_symbols(list(results.values()), params.query)[:500]:
        source = results[path].parsed.source
        symbols.append(types.WorkspaceSymbol(
            name=symbol.name, kind=_SYMBOL[symbol.kind],
            location=_location(ls, source, symbol.selection.start, symbol.selection.end)))
    return symbols


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_LINK)
@safely(default=[])
def document_link(ls: RoutingLanguageServer, params: types.DocumentLinkParams):
    result = ls.check(params.text_document.uri)
    return [types.DocumentLink(range=ls.range(result.parsed.source, span.start, span.end),
                               target=path_to_uri(path))
            for span, path in f.document_links(result)]


@server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
@safely(default=[])
def folding_range(ls: RoutingLanguageServer, params: types.FoldingRangeParams):
    result = ls.check(params.text_document.uri)
    return [types.FoldingRange(start_line=start - 1, end_line=end - 1)
            for start, end in f.folding_ranges(result.parsed.source, result.parsed.module)]


@server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, LEGEND)
@safely(default=types.SemanticTokens(data=[]))
def semantic_tokens(ls: RoutingLanguageServer, params: types.SemanticTokensParams):
    result = ls.check(params.text_document.uri)
    return types.SemanticTokens(data=encode_semantic_tokens(
        ls.positions(result.parsed.source), f.semantic_tokens(result)))


def encode_semantic_tokens(positions: f.Positions, tokens) -> list[int]:
    """LSP's relative encoding: five integers per token (tokens never span lines here)."""
    data: list[int] = []
    last_line = last_char = 0
    for offset, length, kind in tokens:
        line, char = positions.position(offset)
        end_line, end_char = positions.position(offset + length)
        if end_line != line:
            continue
        delta_line = line - last_line
        data += [delta_line, char - (last_char if delta_line == 0 else 0), end_char - char,
                 _TOKEN_INDEX[kind], 0]
        last_line, last_char = line, char
    return data


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
@safely(default=None)
def formatting(ls: RoutingLanguageServer, params: types.DocumentFormattingParams):
    result = ls.check(params.text_document.uri)
    source = result.parsed.source
    formatted = f.format_document(result)
    if formatted is None or formatted == source.text:
        return []
    return [types.TextEdit(range=ls.range(source, 0, len(source.text)), new_text=formatted)]


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
@safely(default=[])
def code_action(ls: RoutingLanguageServer, params: types.CodeActionParams):
    uri = params.text_document.uri
    result = ls.check(uri)
    positions = ls.positions(result.parsed.source)
    start = positions.offset(params.range.start.line, params.range.start.character)
    end = positions.offset(params.range.end.line, params.range.end.character)
    actions = []
    for diagnostic in f.own_diagnostics(result):
        if diagnostic.span.end < start or diagnostic.span.start > end:
            continue
        for fix in diagnostic.fixes:
            edit = types.TextEdit(range=ls.range(diagnostic.source, fix.span.start, fix.span.end),
                                  new_text=fix.replacement)
            actions.append(types.CodeAction(
                title=fix.title, kind=types.CodeActionKind.QuickFix,
                diagnostics=[ls.lsp_diagnostic(diagnostic)],
                edit=types.WorkspaceEdit(changes={uri: [edit]}), is_preferred=True))
    return actions


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="routing-lsp %(levelname)s %(message)s")
    server.start_io()
