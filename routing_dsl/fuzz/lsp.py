"""LSP requests generated from lsprotocol's types and sent to a real server over stdio.

The methods are the server's own feature table (plus a few it does not implement); each
request's params are made from the method's params class (:class:`~.values.Values`),
written in LSP's JSON shape by pygls' converter, and most are then broken at one JSON path
(:func:`~.values.mutate`). A few notifications (edits with hostile ranges, saves, watched
files) are mixed in. The server must answer every request, in time, with a result or one of
the errors LSP has for bad requests, and never log a failing feature.
"""

from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pygls.protocol import JsonRPCProtocol

from .values import JSON_HOSTILE, Values, mutate

# Errors a correct server answers bad requests with (JSON-RPC and LSP codes).
ANSWERS_TO_BAD_REQUESTS = {-32600: "InvalidRequest", -32601: "MethodNotFound",
                           -32602: "InvalidParams", -32803: "RequestFailed"}
# Requests the server does not implement: MethodNotFound, whatever their params.
UNIMPLEMENTED = ("textDocument/signatureHelp", "textDocument/typeDefinition",
                 "textDocument/rangeFormatting", "textDocument/documentHighlight",
                 "completionItem/resolve", "codeAction/resolve", "workspace/executeCommand")
NOTIFICATIONS = ("textDocument/didChange", "textDocument/didSave",
                 "workspace/didChangeWatchedFiles", "$/cancelRequest", "$/setTrace")
TIMEOUT_SECONDS = 20.0


@dataclass
class Finding:
    """One input a surface mishandled: what was sent, and what went wrong."""

    surface: str
    input: str
    problem: str


@dataclass
class Tally:
    """What a campaign on one surface did: inputs sent, how they were answered, findings."""

    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    findings: list[Finding] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"inputs": self.inputs, "accepted": self.accepted, "refused": self.refused,
                "findings": len(self.findings)}


def request_methods() -> list[str]:
    """The requests of the server's feature table (those LSP gives a response type)."""
    from ..lsp.server import server
    return sorted(m for m in server.protocol.fm.features
                  if m in t.METHOD_TO_TYPES and t.METHOD_TO_TYPES[m][1] is not None)


def _pools(uri: str, text: str) -> dict:
    lines = text.count("\n") + 1
    uris = (uri,) * 12 + ("file:///nowhere/never-opened.route", "untitled:Untitled-1", "",
                          "file:///dev/zero", "file:///%00.route", "http://example.com/a.route",
                          uri + "x", uri.upper())

    def line(rng):
        return rng.choice([rng.randrange(lines + 2), 0, lines, 2**31 - 1])

    def character(rng):
        return rng.choice([rng.randrange(120), 0, 2**31 - 1])

    words = ["NEAR", "x", "closest_single_facility", "WH_NJ", "", "1abc", "new name", "a" * 300]
    return {"uri": lambda rng: rng.choice(uris), "target_uri": lambda rng: rng.choice(uris),
            "line": line, "character": character,
            "tab_size": lambda rng: rng.choice([0, 2, 4, 8, 2**31 - 1]),
            "new_name": lambda rng: rng.choice(words), "query": lambda rng: rng.choice(words),
            "text": lambda rng: rng.choice(["", "let X = 1\n", text[: len(text) // 2], "{" * 50]),
            "version": lambda rng: rng.choice([2, 3, 2**31 - 1]),
            "work_done_token": lambda rng: None, "partial_result_token": lambda rng: None}


def generate(rng: random.Random, uri: str, text: str, count: int,
             mutate_share: float = 0.7) -> list[tuple[str, Any, str]]:
    """``count`` messages: (method, params in JSON shape, what was broken); a method in
    NOTIFICATIONS is sent as a notification."""
    from pygls.protocol import default_converter
    converter = default_converter()
    values = Values(rng, _pools(uri, text), max_depth=4)
    methods = request_methods()
    found = []
    for _ in range(count):
        roll = rng.random()
        method = rng.choice(NOTIFICATIONS if roll < 0.1 else UNIMPLEMENTED if roll < 0.15
                            else methods)
        params_type = t.METHOD_TO_TYPES[method][2]
        params = converter.unstructure(values.make(params_type)) if params_type else None
        note = "valid"
        if rng.random() < mutate_share:
            params, note = mutate(rng, params, JSON_HOSTILE)
        found.append((method, params, note))
    return found


def send_untyped(protocol, method: str, params: Any, notification: bool = False):
    """Send ``params`` exactly as given. pygls builds a typed request first, which params
    broken on purpose cannot fill: for this one call, the protocol knows no message types
    (an instance attribute shadowing its method), so the envelope is a plain JSON-RPC one."""
    protocol.get_message_type = lambda method: None
    try:
        if notification:
            JsonRPCProtocol.notify(protocol, method, params)
            return None
        return asyncio.wrap_future(JsonRPCProtocol.send_request(protocol, method, params))
    finally:
        del protocol.get_message_type


async def exercise(client, messages: list[tuple[str, Any, str]], logs: list,
                   surface: str = "lsp") -> Tally:
    """Send ``messages`` to a started, initialized server through ``client`` (a pygls or
    pytest-lsp client); ``logs`` is the list the client appends the server's
    window/logMessage params to. Every request must be answered (see the module)."""
    tally = Tally()
    pending = []
    logged = len(logs)
    for method, params, note in messages:
        tally.inputs += 1
        described = f"{method} {note}: {_short(params)}"
        if method in NOTIFICATIONS:
            send_untyped(client.protocol, method, params, notification=True)
            tally.accepted += 1
            continue
        pending.append((described, send_untyped(client.protocol, method, params)))
        if len(pending) >= 50:  # an editor has a few requests in flight, not thousands
            await _collect(pending, tally, surface)
            pending = []
    await _collect(pending, tally, surface)
    for entry in logs[logged:]:
        if getattr(entry, "type", None) == t.MessageType.Error:
            tally.findings.append(Finding(surface, "(server log)", entry.message))
    return tally


async def _collect(pending: list, tally: Tally, surface: str) -> None:
    if not pending:
        return
    done, _ = await asyncio.wait([f for _, f in pending], timeout=TIMEOUT_SECONDS)
    for described, future in pending:
        if future not in done:
            future.cancel()
            tally.findings.append(Finding(surface, described, "no answer"))
            continue
        error = future.exception()
        if error is None:
            tally.accepted += 1
            continue
        code = getattr(error, "code", None)
        if code in ANSWERS_TO_BAD_REQUESTS:
            tally.refused += 1
        else:
            tally.findings.append(Finding(surface, described, f"error {code}: {error}"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


async def campaign(seed: int, count: int, folder: Path) -> Tally:
    """Start a server (as an editor does) on the starter project written in ``folder``, open
    its rules, send ``count`` generated messages, then check that it still answers."""
    from pygls.lsp.client import LanguageClient

    from . import starter_project
    path = starter_project(folder) / "routes.route"
    text = path.read_text(encoding="utf-8")
    uri = path.as_uri()
    client = LanguageClient("routing-fuzz", "1")
    logs: list = []

    def log(params) -> None:
        logs.append(params)

    def ignore(params) -> None:
        return None

    client.feature(t.WINDOW_LOG_MESSAGE)(log)
    client.feature(t.WINDOW_SHOW_MESSAGE)(log)
    client.feature(t.CLIENT_REGISTER_CAPABILITY)(ignore)
    client.feature(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(ignore)
    messages = generate(random.Random(seed), uri, text, count)
    # the server's stderr goes nowhere: a pipe nobody reads would fill and stall it
    await client.start_io(sys.executable, "-c", "import os; os.dup2(os.open(os.devnull, "
                          "os.O_WRONLY), 2); from routing_dsl.lsp.server import main; main()")
    tally = Tally()
    try:
        await asyncio.wait_for(client.initialize_async(t.InitializeParams(
            capabilities=t.ClientCapabilities(),
            workspace_folders=[t.WorkspaceFolder(uri=path.parent.as_uri(), name="fuzz")])),
            TIMEOUT_SECONDS)
        client.initialized(t.InitializedParams())
        client.text_document_did_open(t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=uri, language_id="routing", version=1,
                                             text=text)))
        tally = await exercise(client, messages, logs)
        await still_answers(client, uri, tally)
        await asyncio.wait_for(client.shutdown_async(None), TIMEOUT_SECONDS)
    except TimeoutError:
        tally.findings.append(Finding("lsp", "initialize or shutdown", "no answer"))
    finally:
        client.exit(None)  # the server exits even when something above failed
        try:
            await asyncio.wait_for(client.stop(), TIMEOUT_SECONDS)
        except TimeoutError:
            tally.findings.append(Finding("lsp", "exit", "the server did not exit"))
            process = getattr(client, "_server", None)  # pygls keeps the process there
            if process is not None and process.returncode is None:
                process.kill()
    return tally


async def still_answers(client, uri: str, tally: Tally, surface: str = "lsp") -> None:
    """After the campaign, the server still answers an ordinary request."""
    try:
        await asyncio.wait_for(client.text_document_document_symbol_async(
            t.DocumentSymbolParams(text_document=t.TextDocumentIdentifier(uri=uri))),
            TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - any failure here is the finding
        tally.findings.append(Finding(surface, "documentSymbol after the campaign",
                                      f"{type(error).__name__}: {error}"))
