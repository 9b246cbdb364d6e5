"""The real language server under requests generated from lsprotocol's types (and broken at
one JSON path each): every request is answered, with a result or an LSP error, and no feature
fails. `make test` sends a few hundred; `pytest -m fuzz` thousands, over several seeds.

Each finding of the campaign is a named test below."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from routing_dsl.fuzz import starter_project
from routing_dsl.fuzz.lsp import exercise, generate, send_untyped, still_answers

INVALID_PARAMS = -32602
URI = ""  # the open document's, set by the `client` fixture


def client_path() -> str:
    from pygls.uris import to_fs_path
    return to_fs_path(URI)


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    return starter_project(tmp_path_factory.mktemp("lsp-fuzz")) / "routes.route"


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "routing_dsl", "lsp"]))
async def client(lsp_client: LanguageClient, rules: Path):
    global URI
    URI = rules.as_uri()
    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams):
        return None

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[types.WorkspaceFolder(uri=rules.parent.as_uri(), name="fuzz")]))
    lsp_client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=URI, language_id="routing", version=1,
                                             text=rules.read_text())))
    yield
    await lsp_client.shutdown_session()


async def campaign(client: LanguageClient, seed: int, count: int) -> None:
    messages = generate(random.Random(seed), URI, Path(client_path()).read_text(), count)
    tally = await exercise(client, messages, client.log_messages)
    await still_answers(client, URI, tally)
    assert not tally.findings, "\n".join(f"{f.input}\n  -> {f.problem}"
                                         for f in tally.findings[:10])
    assert tally.accepted > count // 10 and tally.refused > count // 10
    assert client.messages == []  # nothing popped up over the user's work


async def test_generated_requests_are_all_answered(client: LanguageClient):
    await campaign(client, seed=22, count=300)


@pytest.mark.fuzz
@pytest.mark.parametrize("seed", range(4))
async def test_generated_requests_are_all_answered_long(client: LanguageClient, seed: int):
    await campaign(client, seed=1000 + seed, count=3000)


async def refused(client: LanguageClient, method: str, params) -> str:
    with pytest.raises(JsonRpcException) as error:
        await send_untyped(client.protocol, method, params)
    assert error.value.code == INVALID_PARAMS
    return error.value.message


def at(line, character) -> dict:
    return {"textDocument": {"uri": URI}, "position": {"line": line, "character": character}}


# ---- findings ----------------------------------------------------------------------------------

async def test_a_line_outside_lsp_range_is_refused_naming_the_position(client):
    # hover, definition, ... never answered these: the editor waited forever
    for method in ["textDocument/hover", "textDocument/definition", "textDocument/completion",
                   "textDocument/references", "textDocument/prepareRename"]:
        for line in [2**31, -1]:
            params = at(line, 0) | ({"context": {"includeDeclaration": True}}
                                    if method.endswith("references") else {})
            message = await refused(client, method, params)
            assert "$.params.position" in message and f"but was {line}" in message


async def test_a_code_action_range_outside_lsp_range_is_refused(client):
    message = await refused(client, "textDocument/codeAction", {
        "textDocument": {"uri": URI}, "context": {"diagnostics": []},
        "range": {"start": {"line": -1, "character": 0}, "end": {"line": 0, "character": 0}}})
    assert "$.params.range.start" in message


async def test_a_formatting_tab_size_outside_lsp_range_is_refused(client):
    for tab_size in [-1, 2**31]:
        message = await refused(client, "textDocument/formatting", {
            "textDocument": {"uri": URI}, "options": {"tabSize": tab_size, "insertSpaces": True}})
        assert "$.params.options" in message and "tab_size" in message


async def test_a_value_of_the_wrong_type_is_refused_naming_its_json_path(client):
    message = await refused(client, "textDocument/hover", at("a", 0))
    assert message == "invalid params: $.params.position.line: expected int"
    message = await refused(client, "textDocument/hover", {"position": {"line": 0}})
    assert "$.params.textDocument: required field missing" in message
    assert "$.params.position.character: required field missing" in message
    assert "$.params.textDocument: expected TextDocumentIdentifier" in \
        await refused(client, "textDocument/hover", [1, 2])


async def test_a_position_beyond_the_text_is_clamped_to_it(client):
    hover = await send_untyped(client.protocol, "textDocument/hover", at(2**31 - 1, 2**31 - 1))
    assert hover is None
    symbols = await send_untyped(client.protocol, "textDocument/documentSymbol",
                                 {"textDocument": {"uri": URI}})
    assert symbols  # and the server is still serving


async def test_a_document_never_opened_is_refused_without_reading_it(client):
    # the server used to read the file from disk: /dev/zero never ends, and it hung
    for uri in ["file:///dev/zero", "file:///nowhere/never-opened.route", "untitled:Untitled-1",
                ""]:
        message = await refused(client, "textDocument/documentSymbol",
                                {"textDocument": {"uri": uri}})
        assert "is not open in the editor" in message


async def test_a_notification_with_bad_params_is_logged_not_shown(client):
    send_untyped(client.protocol, "textDocument/didSave", 1e308, notification=True)
    send_untyped(client.protocol, "$/cancelRequest", {"id": [[]]}, notification=True)  # was
    # a TypeError (unhashable list) inside pygls, shown to the user in a pop-up
    await send_untyped(client.protocol, "textDocument/documentSymbol",
                       {"textDocument": {"uri": URI}})
    assert client.messages == []
    ignored = [m.message for m in client.log_messages if m.type == types.MessageType.Warning]
    assert any(m.startswith("ignored textDocument/didSave: invalid params") for m in ignored)
    assert any("$/cancelRequest: $.params.id" in m for m in ignored)


async def test_a_change_to_a_document_never_opened_is_ignored(client):
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri="file:///never.route", version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text="x")]))
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=URI)))
    assert symbols and client.messages == []
    assert not [m for m in client.log_messages if m.type == types.MessageType.Error]
