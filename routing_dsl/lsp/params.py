"""LSP params checked at the boundary: every request gets an answer.

pygls structures each incoming message into lsprotocol's attrs classes (whose validators bound
positions to LSP's `uinteger`, 0 to 2^31 - 1). When that fails it only logs the problem and
shows the user a message: the request itself is never answered, and the editor waits for it
forever. :class:`CheckedProtocol` answers such a request with a JSON-RPC InvalidParams error
whose message names the JSON path and what belongs there
(`$.params.position.line: Position.line should be in range [0:2147483647], but was -1`), and
a request that is not even a JSON-RPC request (no `jsonrpc`) with InvalidRequest.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from cattrs import transform_error
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import (JsonRPCNotification, JsonRPCProtocol,
                                     JsonRPCRequestMessage)

log = logging.getLogger("routing_dsl.lsp")
MAX_PROBLEMS = 3


@dataclass(frozen=True)
class Ignored:
    """A notification whose params do not fit: logged, not handled (nothing can answer it)."""

    problem: str


@dataclass(frozen=True)
class Refused:
    """A request whose envelope or params do not fit: answered with ``code`` and ``message``."""

    id: int | str | None
    code: int
    message: str


def request_id(data: dict) -> int | str | None:
    """The id to answer with: JSON-RPC ids are strings or integers, else null."""
    found = data.get("id")
    return found if isinstance(found, str | int) and not isinstance(found, bool) else None


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


_SEGMENT = re.compile(r"\.([a-z][a-z0-9_]*)")


def _reason(error: BaseException, expected: Any) -> str:
    if isinstance(error, KeyError):
        return "required field missing"
    message = str(error)
    if isinstance(error, ValueError) and "should be in range" in message:
        return message  # lsprotocol's own bounds: `Position.line should be in range [...]`
    name = getattr(expected, "__name__", None) or str(expected).replace("typing.", "")
    return f"expected {name}"


def describe(error: BaseException) -> str:
    """The first problems of a failed structuring, each `$.json.path: what belongs there`."""
    try:
        found = transform_error(error, path="$", format_exception=_reason)
    except Exception:  # noqa: BLE001 - never let the description fail the answer
        found = [f"{type(error).__name__} @ $"]
    problems = []
    for line in found[:MAX_PROBLEMS]:
        reason, _, path = line.rpartition(" @ ")
        path = _SEGMENT.sub(lambda m: "." + _camel(m.group(1)), path)  # the JSON names
        problems.append(f"{path}: {reason}")
    more = f" (and {len(found) - MAX_PROBLEMS} more)" if len(found) > MAX_PROBLEMS else ""
    return "invalid params: " + "; ".join(problems) + more


class CheckedProtocol(LanguageServerProtocol):
    """pygls' protocol, answering every request it cannot structure (see the module)."""

    def structure_message(self, data: dict[str, Any]):
        # json.loads calls this for every object, innermost first: only a message envelope
        # (jsonrpc and method) is ours to check; responses and the rest go to pygls as before
        if not ("jsonrpc" in data and "method" in data) or "error" in data:
            return super().structure_message(data)
        method, request = data["method"], "id" in data
        if not isinstance(method, str):
            problem = "invalid request: $.method: expected a string"
            return Refused(request_id(data), JsonRpcInvalidRequest.CODE, problem) if request \
                else Ignored(problem)
        message_type = self.get_message_type(method) or (
            JsonRPCRequestMessage if request else JsonRPCNotification)
        try:
            message = self._converter.structure(data, message_type)
        except Exception as error:  # noqa: BLE001 - cattrs reports every kind of mismatch
            problem = describe(error)
            if not request:
                return Ignored(f"{method[:100]}: {problem}")
            log.info("%s: %s", method[:100], problem)
            return Refused(request_id(data), JsonRpcInvalidParams.CODE, problem)
        if method == types.CANCEL_REQUEST and not isinstance(message.params.id, str | int):
            return Ignored("$/cancelRequest: $.params.id: expected an integer or a string")
        return message

    def handle_message(self, message):
        if isinstance(message, Refused):
            self._send_response(message.id, error=types.ResponseError(
                code=message.code, message=message.message))
            return
        if isinstance(message, Ignored):
            # a notification cannot be answered: say so in the editor's log, no pop-up
            log.warning("ignored %s", message.problem)
            self.notify(types.WINDOW_LOG_MESSAGE, types.LogMessageParams(
                type=types.MessageType.Warning, message=f"ignored {message.problem}"[:500]))
            return
        if isinstance(message, dict) or getattr(message, "jsonrpc", None) != \
                JsonRPCProtocol.VERSION:
            # not JSON-RPC 2.0 (pygls would drop it silently): a request still gets an answer
            data = message if isinstance(message, dict) else \
                {k: getattr(message, k) for k in ("id", "method") if hasattr(message, k)}
            if "id" in data and "method" in data:
                self._send_response(request_id(data), error=types.ResponseError(
                    code=JsonRpcInvalidRequest.CODE,
                    message='invalid request: $.jsonrpc: expected "2.0"'))
            return
        super().handle_message(message)

    @staticmethod
    def _open(workspace, uri) -> bool:
        from urllib.parse import unquote
        return isinstance(uri, str) and unquote(uri) in workspace.text_documents

    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        """pygls raises KeyError on a change to a document never opened: ignore it."""
        if not self._open(self.workspace, params.text_document.uri):
            log.warning("didChange for a document that is not open: %r",
                        params.text_document.uri[:200])
            return
        yield from super().lsp_text_document__did_change(params)

    lsp_text_document__did_change.method_name = types.TEXT_DOCUMENT_DID_CHANGE  # type: ignore[attr-defined]
