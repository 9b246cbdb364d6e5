"""The real language server over stdio, driven by pytest-lsp as an editor would."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types
import pytest
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "omnichannel" / "omnichannel.route"


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "routing_dsl", "lsp"]))
async def client(lsp_client: LanguageClient):
    lsp_client.registrations = []

    @lsp_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams):  # as an editor does: accept it
        lsp_client.registrations.extend(params.registrations)

    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[types.WorkspaceFolder(uri=(ROOT / "examples").as_uri(),
                                                 name="examples")]))
    yield
    await lsp_client.shutdown_session()


def open_document(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = path.resolve().as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="routing", version=1,
                                             text=text if text is not None else path.read_text())))
    return uri


async def diagnostics_until(client: LanguageClient, uri: str, condition, seconds: float = 10):
    """Wait for published diagnostics of ``uri`` that satisfy ``condition``."""
    async def wait():
        while not (uri in client.diagnostics and condition(list(client.diagnostics[uri]))):
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    await asyncio.wait_for(wait(), seconds)
    return list(client.diagnostics[uri])


def position_of(text: str, needle: str, delta: int = 0) -> types.Position:
    offset = text.index(needle) + delta
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


async def test_diagnostics_at_the_right_ranges(client: LanguageClient, tmp_path: Path):
    text = ('use std.hotwax\n\ngroup "G" for store S {\n  routing "R" {\n'
            '    filter {\n      queue == UNFILLABLE_PARKIN\n    }\n'
            '    rule "r" {\n      assign single\n    }\n  }\n}\n')
    uri = open_document(client, tmp_path / "bad.route", text)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    [diagnostic] = client.diagnostics[uri]
    assert diagnostic.code == "RT201"
    assert diagnostic.range == types.Range(types.Position(5, 15), types.Position(5, 32))
    assert "did you mean `UNFILLABLE_PARKING`?" in diagnostic.message


async def test_diagnostics_follow_edits(client: LanguageClient, tmp_path: Path):
    text = 'group "G" for store S {\n  routing "R" {\n    rule "r" {\n      assign single\n    }\n  }\n}\n'
    uri = open_document(client, tmp_path / "ok.route", text)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[uri]) == []
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(
            text=text.replace("assign single", "assign singel"))]))
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert [d.code for d in client.diagnostics[uri]] == ["RT309"]


async def test_completion_hover_definition(client: LanguageClient):
    text = EXAMPLE.read_text()
    uri = open_document(client, EXAMPLE)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    completions = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(text, "queue == _NA_", len("queue == "))))
    labels = {item.label for item in completions.items}
    assert {"_NA_", "UNFILLABLE_PARKING"} <= labels and "NEXT_DAY" not in labels
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(text, "sales_channel in")))
    assert "order's sales channel" in hover.contents.value
    location = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(text, "closest_single_facility")))
    assert location.uri.endswith("stdlib/templates.route")


async def test_rename_and_format(client: LanguageClient, tmp_path: Path):
    text = ('let NEAR = 20 mi\ngroup "G" for store S {\n  routing "R" {\n    rule "r" {\n'
            '      assign single\n      inventory {\n        distance <= NEAR\n      }\n'
            '    }\n  }\n}\n')
    uri = open_document(client, tmp_path / "rename.route", text)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position_of(text, "NEAR\n      }"), new_name="CLOSE"))
    assert len(edit.changes[uri]) == 2
    assert {e.new_text for e in edit.changes[uri]} == {"CLOSE"}
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits[0].new_text.startswith("let NEAR = 20 mi\n\ngroup")


async def test_broken_text_never_crashes_the_server(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "junk.route", 'group "x { @@ rule ] } }')
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert client.diagnostics[uri]
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert isinstance(symbols, (list, tuple))
    await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 10)))
    # still serving: a later document gets its diagnostics
    good = open_document(client, EXAMPLE)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[good]) == []


async def test_importers_are_rechecked_when_an_imported_buffer_changes(client: LanguageClient,
                                                                      tmp_path: Path):
    lib = tmp_path / "lib.route"
    lib.write_text("declare queue MY_QUEUE\n")
    main = tmp_path / "main.route"
    main_text = ('use "lib.route"\ngroup "G" for store S {\n  routing "R" {\n'
                 '    filter {\n      queue == MY_QUEUE\n    }\n'
                 '    rule "r" {\n      assign single\n    }\n  }\n}\n')
    main_uri = open_document(client, main, main_text)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[main_uri]) == []
    lib_uri = open_document(client, lib)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=lib_uri, version=2),
        content_changes=[types.TextDocumentContentChangeWholeDocument(
            text="declare queue OTHER_QUEUE\n")]))
    found = await diagnostics_until(client, main_uri, lambda ds: ds)
    assert [d.code for d in found] == ["RT201"]


async def test_a_file_name_with_percent_signs(client: LanguageClient, tmp_path: Path):
    path = tmp_path / "50%off %41.route"
    text = 'let X = 1\nlet X = 2\n'
    path.write_text(text)
    uri = open_document(client, path, text)
    assert "%2541" in uri  # the editor quotes `%` once
    found = await diagnostics_until(client, uri, lambda ds: ds)
    assert "RT202" in [d.code for d in found]
    location = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position_of(text, "X")))
    assert location is None or location.uri == uri


async def test_prepare_rename_and_refusals(client: LanguageClient, tmp_path: Path):
    text = ('use std.templates\nlet NEAR = 20 mi\nlet FAR = 90 mi\ngroup "G" for store S {\n'
            '  routing "R" {\n    rule "r" extends closest_single_facility {\n'
            '      inventory {\n        distance <= NEAR\n        distance >= FAR\n      }\n'
            '    }\n  }\n}\n')
    uri = open_document(client, tmp_path / "rename.route", text)
    await diagnostics_until(client, uri, lambda ds: True)
    doc = types.TextDocumentIdentifier(uri=uri)
    prepared = await client.text_document_prepare_rename_async(types.PrepareRenameParams(
        text_document=doc, position=position_of(text, "NEAR\n")))
    assert prepared.placeholder == "NEAR"
    with pytest.raises(JsonRpcException, match="outside the workspace"):
        await client.text_document_prepare_rename_async(types.PrepareRenameParams(
            text_document=doc, position=position_of(text, "closest_single_facility {")))
    with pytest.raises(JsonRpcException, match="`FAR` already exists"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc, position=position_of(text, "NEAR\n"), new_name="FAR"))


async def test_files_changed_on_disk_are_picked_up(client: LanguageClient, tmp_path: Path):
    lib = tmp_path / "lib.route"
    lib.write_text("declare queue MY_QUEUE\n")
    text = ('use "lib.route"\ngroup "G" for store S {\n  routing "R" {\n'
            '    filter {\n      queue == MY_QUEUE\n    }\n'
            '    rule "r" {\n      assign single\n    }\n  }\n}\n')
    uri = open_document(client, tmp_path / "main.route", text)
    assert await diagnostics_until(client, uri, lambda ds: True) == []
    assert [r.method for r in client.registrations] == ["workspace/didChangeWatchedFiles"]
    lib.write_text("declare queue OTHER_QUEUE\n")
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=lib.as_uri(), type=types.FileChangeType.Changed)]))
    found = await diagnostics_until(client, uri, lambda ds: ds)
    assert [d.code for d in found] == ["RT201"]


async def test_a_newer_edit_supersedes_an_older_check(client: LanguageClient, tmp_path: Path):
    text = 'group "G" for store S {\n  routing "R" {\n    rule "r" {\n      assign single\n' \
           '    }\n  }\n}\n'
    uri = open_document(client, tmp_path / "edits.route", text)
    await diagnostics_until(client, uri, lambda ds: True)
    for version in range(2, 7):
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(
                text=text.replace("single", "singel" * version))]))
    versions = []

    async def collect():
        while 6 not in versions:
            params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            if params.uri == uri:
                versions.append(params.version)
    await asyncio.wait_for(collect(), 10)
    found = list(client.diagnostics[uri])
    assert versions == [6]  # typing fast: one check, for the last version
    assert "singelsingelsingelsingelsingelsingel" in found[0].message


async def test_workspace_symbols_and_document_links(client: LanguageClient):
    uri = open_document(client, EXAMPLE)
    await diagnostics_until(client, uri, lambda ds: True)
    symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="Web ord"))
    assert any(s.name == "Web orders" and s.location.uri == uri for s in symbols)
    links = await client.text_document_document_link_async(types.DocumentLinkParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert {Path(link.target).name for link in links} >= {"catalog.route", "hotwax.route"}
