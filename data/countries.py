"""Country names in any common language or spelling -> ISO 3166-1 alpha-2 codes.

Exports name countries the way their shop software or their language does ("Japón",
"Allemagne", "EE. UU.", "DEU"). The names come from two maintained libraries, never a
hand-written table: pycountry (the ISO 3166 codes, official and common names and their
translations) and Babel (the Unicode CLDR territory names of every locale, i.e. the common
names people write). Lookup ignores case, accents and punctuation. Where sources disagree
on a spelling (a few translations are wrong: one locale calls Malaysia "Mexico"), the code
most sources give wins if it has at least three times the votes of the next; otherwise the
spelling stays unresolved rather than guessed (map it under ``values`` yourself).
"""

from __future__ import annotations

import gettext
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

_CODE = re.compile(r"^[A-Z]{2}$")
ISO_WEIGHT = 10
"""Votes of an ISO code or English ISO name (the standard itself) against one translation."""
MAJORITY = 3


def normalise(name: str) -> str:
    """Lower case, no accents, punctuation as blanks, single blanks: the lookup key."""
    text = unicodedata.normalize("NFKD", str(name).casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^\w]+", " ", text)
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _names() -> dict[str, str]:
    """Every known spelling (normalised) -> alpha-2 code; ambiguous spellings left out."""
    import pycountry
    from babel import Locale
    from babel.localedata import locale_identifiers

    found: dict[str, Counter] = {}

    def add(name: str | None, code: str, votes: int = 1) -> None:
        if name:
            found.setdefault(normalise(name), Counter())[code] += votes

    countries = list(pycountry.countries)
    english = {}
    for c in countries:
        english[c.alpha_2] = [
            getattr(c, key, None) for key in ("name", "common_name", "official_name")
        ]
        add(c.alpha_2, c.alpha_2, ISO_WEIGHT)
        add(c.alpha_3, c.alpha_2, ISO_WEIGHT)
        for name in english[c.alpha_2]:
            add(name, c.alpha_2, ISO_WEIGHT)
    for language in sorted(os.listdir(pycountry.LOCALES_DIR)):
        try:
            tr = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        except OSError:
            continue
        for code, names in english.items():
            for name in names:
                if name:
                    add(tr.gettext(name), code)
    iso = set(english)
    for identifier in locale_identifiers():
        if "_" in identifier:  # regional variants repeat their language's names
            continue
        try:
            territories = Locale.parse(identifier).territories
        except (ValueError, KeyError):
            continue
        for code, name in territories.items():
            if code in iso:
                add(name, code)
    table = {}
    for name, votes in found.items():
        ranked = votes.most_common(2)
        if len(ranked) == 1 or ranked[0][1] >= MAJORITY * ranked[1][1]:
            table[name] = ranked[0][0]
    return table


def to_alpha2(names: Iterable[str]) -> dict[str, str | None]:
    """Each distinct name -> its alpha-2 code, or None when no library knows it (or it is
    ambiguous). A cell that already is an upper-case two-letter code is kept as it is."""
    table = _names()
    out: dict[str, str | None] = {}
    for name in names:
        text = str(name).strip()
        out[name] = text if _CODE.match(text) else table.get(normalise(text))
    return out
