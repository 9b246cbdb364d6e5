"""Writing an output file completely or not at all: plans, results, formatted sources, reports.

The data goes to a temporary file beside the target (``.NAME.routing-tmp.PID.RANDOM``), then
replaces it in one rename, so a reader never sees half a file and a killed run leaves the old
one in place.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

TEMP_MARK = ".routing-tmp."


class UnwritableOutput(Exception):
    """The target's folder does not take new files (the message names the path and why)."""


def write_atomically(path: Path, data: str | bytes | Iterable[bytes]) -> None:
    """Write ``path`` completely or not at all: ``data``, or the pieces it yields, one after
    the other (a large document need not be held whole).

    A link is written through (its target is replaced, the link stays); an existing file
    keeps its mode; a new file gets the mode the umask allows. Temporary files left by a
    killed run are removed on the next write."""
    target = Path(os.path.realpath(path))
    directory = target.parent
    _remove_stale_temporaries(directory, target.name)
    temp = directory / f".{target.name}{TEMP_MARK}{os.getpid()}.{secrets.token_hex(4)}"
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    payload = data.encode("utf-8") if isinstance(data, str) else data
    pieces = (payload,) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise UnwritableOutput(f"{path}: cannot write here: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        if temp.exists():
            temp.unlink()
        raise


def _remove_stale_temporaries(directory: Path, name: str) -> None:
    """Remove ``.NAME.routing-tmp.PID.*`` files whose writing process is gone."""
    try:
        candidates = list(directory.glob(f".{name}{TEMP_MARK}*"))
    except OSError:
        return
    for candidate in candidates:
        pid_text = candidate.name[len(f".{name}{TEMP_MARK}"):].split(".")[0]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # still writing
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            candidate.unlink()
        except OSError:
            pass
