"""The cheap test that decides whether a file is parsed at all: does it contain a rule's words?

A rule declares triggers; a file can hold a finding of the rule only if one trigger matches.
A trigger is a word, or a tuple of words that must all occur. A word ending in `(` stands for a
call: `backward(` also matches `backward (`. Plain substring tests keep this at the speed of
reading the file; no libcst here, so the flake8 plugin can use it too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Union

Trigger = Union[str, tuple[str, ...]]


def matches(text: str, triggers: Iterable[Trigger]) -> bool:
    return any(_all_words(text, (t,) if isinstance(t, str) else t) for t in triggers)


def _all_words(text: str, words: tuple[str, ...]) -> bool:
    for word in words:
        if word.endswith("("):
            stem = word[:-1]
            if stem not in text or _call(stem).search(text) is None:
                return False
        elif word not in text:
            return False
    return True


@functools.cache
def _call(stem: str) -> re.Pattern[str]:
    return re.compile(re.escape(stem) + r"\s*\(")


def triggered(text: str, codes: Iterable[str]) -> bool:
    """Whether any of these rules may report something in this text (else it is not parsed)."""
    from gradlint.rules.catalogue import CATALOGUE

    return any(matches(text, CATALOGUE[code].triggers) for code in codes if code in CATALOGUE)
