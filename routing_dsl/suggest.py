""""Did you mean ...?" suggestions, shared by the parser, the checker and the language server."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The known name closest to ``word``, if one is close enough to be a likely typo."""
    if not word or len(word) > 64:  # a typo is short; difflib is quadratic in the length
        return None
    pool = list(dict.fromkeys(candidates))
    by_lower = {c.lower(): c for c in pool}
    if word.lower() in by_lower and by_lower[word.lower()] != word:
        return by_lower[word.lower()]
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None
