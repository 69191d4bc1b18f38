"""How alike two hazard descriptions are, for telling a hazard that came back (复发) from a new
one of the same area and category. Pinned on real phrasings in tests/unit/test_similarity.py."""

from __future__ import annotations

import re

# What carries no meaning of its own here: punctuation, spaces, digits and Latin letters (sizes,
# codes), and the particles people add when they report a thing again (又, 还, 了 …).
_NOISE = re.compile(r"[\s\d\W_a-zA-Z]+")
_FILLER = frozenset("的了又有在就被是里面还也都很太")
ALIKE = 0.33        # at least this: the same hazard, described again


def _grams(text: str) -> set[str]:
    kept = "".join(c for c in _NOISE.sub("", text) if c not in _FILLER)
    return set(kept) | {kept[i:i + 2] for i in range(len(kept) - 1)}


def likeness(a: str, b: str) -> float:
    """Dice's coefficient over the characters and character pairs of both: 1 for the same
    words, 0 for nothing in common."""
    first, second = _grams(a), _grams(b)
    if not first or not second:
        return 0.0
    return 2 * len(first & second) / (len(first) + len(second))
