"""Finding, reading and parsing modules: the entry file, ``use``d files and stdlib modules.

The language server gives the loader the text of open editor buffers (``overrides``), so files
are checked as the author sees them, saved or not.
"""

from __future__ import annotations

import os
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path

from . import nodes as n
from ._resources import stdlib_dir
from .diagnostics import Diagnostic
from .parser import parse
from .source import SourceFile


class SourceError(Exception):
    """A file that cannot be read as UTF-8 text (missing, unreadable, binary)."""


class ImportProblem(Exception):
    """A ``use`` that names no module it may import; the message says why."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


# A folder holding one of these is a project root: `use "file.route"` stays inside it.
ROOT_MARKERS = (".git", ".routing-root")


def project_root(entry: Path, workspace_roots: tuple[Path, ...] = ()) -> Path:
    """The nearest folder above ``entry`` holding a root marker, else the editor's workspace
    folder holding ``entry``, else ``entry``'s own folder."""
    for folder in entry.parents:
        for marker in ROOT_MARKERS:
            try:
                if (folder / marker).exists():
                    return folder
            except OSError:
                continue
    for root in workspace_roots:
        if entry.is_relative_to(root):
            return root
    return entry.parent


@dataclass
class ParsedModule:
    path: Path | None
    source: SourceFile
    module: n.Module
    syntax_diagnostics: list[Diagnostic]


def display_name(path: Path) -> str:
    """The path relative to the working directory when it is below it, as users typed it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory") from None
    except PermissionError:
        raise SourceError(f"{path}: permission denied") from None
    except UnicodeDecodeError as error:
        raise SourceError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise SourceError(f"{path}: {error.strerror or error}") from None


@dataclass
class Loader:
    overrides: dict[Path, str] = field(default_factory=dict)
    _cache: dict[Path, ParsedModule] = field(default_factory=dict)

    def load(self, path: Path, name: str | None = None) -> ParsedModule:
        path = path.resolve()
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        text = self.overrides.get(path)
        if text is None:
            text = read_text(path)
        parsed = self.parse_text(text, name or display_name(path), path)
        self._cache[path] = parsed
        return parsed

    @staticmethod
    def parse_text(text: str, name: str, path: Path | None = None) -> ParsedModule:
        source = SourceFile(name, text)
        module, diagnostics = parse(source)
        return ParsedModule(path.resolve() if path else None, source, module, diagnostics)

    def resolve(self, use: n.Use, importer: Path | None, root: Path) -> Path | None:
        """The file a ``use`` names, or None when it names no existing module. A path must name
        a ``.route`` file inside ``root`` (after following links); anything else raises
        :class:`ImportProblem`, so a hostile ``use`` can make nothing else be read."""
        if use.is_path:
            return self._resolve_path(use.target, importer, root)
        if use.target not in stdlib_modules():  # a name, looked up; never a path to probe
            return None
        parts = use.target.split(".")
        return stdlib_dir().joinpath(*parts[1:]).with_suffix(".route").resolve()

    def _resolve_path(self, target: str, importer: Path | None, root: Path) -> Path | None:
        inside = f"a `use` names a `.route` file inside the project ({root})"
        if not target.endswith(".route") or "\x00" in target:
            raise ImportProblem(f"`{_shown(target)}` is not a `.route` file", inside)
        base = importer.parent if importer else Path.cwd()
        try:
            candidate = (base / target).resolve()
        except (OSError, RuntimeError, ValueError):
            raise ImportProblem(f"cannot follow `{_shown(target)}` (a link loop?)") from None
        if not candidate.is_relative_to(root):
            raise ImportProblem(f"`{_shown(target)}` is outside the project",
                                f"{inside}; a folder holding `.routing-root` or `.git` marks "
                                "the project root")
        if candidate.suffix != ".route":
            raise ImportProblem(f"`{_shown(target)}` links to a file that is not a `.route` "
                                "file", inside)
        try:
            found = candidate.is_file()
        except OSError:
            found = False
        return candidate if found or candidate in self.overrides else None


def _shown(target: str) -> str:
    text = target if len(target) <= 80 else target[:77] + "..."
    return text.encode("unicode_escape").decode("ascii")


@lru_cache(maxsize=1)
def stdlib_modules() -> list[str]:
    root = stdlib_dir()
    return sorted("std." + ".".join(p.relative_to(root).with_suffix("").parts)
                  for p in root.rglob("*.route"))
