"""Where the grammar and the stdlib live: inside a built wheel, or beside the package in a
checkout or an editable install (hatch's force-include only applies to wheels)."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def data_dir(name: str) -> Path:
    packaged = Path(__file__).resolve().parent / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1] / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"routing-dsl installation is missing its {name}/ folder")


def grammar_path() -> Path:
    return data_dir("grammar") / "routing.lark"


def stdlib_dir() -> Path:
    return data_dir("stdlib")
