"""Parse FACS action-unit strings as the ME datasets write them.

Forms seen: ``4``, ``4+L10``, ``R12 + R15``, ``R14A``, ``T28+14``, ``AU4(2)``,
``1+2 or 4``, ``1，2`` (full-width comma), ``AU1+AU2``, ``AU12(k)`` / ``25+26(k)`` (4DME),
``13?`` (CAS(ME)^3 Part C), empty / NaN.

`parse_au_string` returns one dict per AU mention::

    {"au": 12, "side": "R" | "L" | "T" | "B" | None, "intensity": "A".."E" | None,
     "alternative": False}

``side`` is the letter written before the number (L/R laterality; T/B as the coders
wrote them), ``intensity`` a FACS intensity letter after it; a number in parentheses
after an AU (``AU4(2)``) is kept as ``count``. A coder's marker after an AU is kept as
``marker``: ``k`` for 4DME's ``(k)``, ``?`` for an uncertain AU (``13?``); the AU itself
is still a mention (public loaders differ on what to do with them: the MEB toolkit
zeroes 4DME's (k) AUs). Mentions after an ``or`` are marked ``alternative=True``.
`au_numbers` gives the sorted unique AU numbers of all mentions, `au_marked` those that
carry a marker.
"""

from __future__ import annotations

import math
import re

_SPLIT = re.compile(r"\s*(?:\+|,|，|;|、|\band\b)\s*", re.IGNORECASE)
_OR = re.compile(r"\s+or\s+|/", re.IGNORECASE)
_TOKEN = re.compile(r"^(?:AU)?\s*([LRTBU])?\s*(\d{1,2})\s*([A-E])?\s*(?:\((\d+|k)\))?\s*(\?)?$", re.IGNORECASE)


class AUParseError(ValueError):
    pass


def parse_au_string(raw) -> list[dict]:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return []
    text = str(raw).strip()
    if isinstance(raw, float) and raw.is_integer():
        text = str(int(raw))
    if not text:
        return []
    out: list[dict] = []
    for k, part in enumerate(_OR.split(text)):
        for tok in _SPLIT.split(part.strip()):
            tok = tok.strip()
            if not tok:
                continue
            m = _TOKEN.match(tok)
            if not m:
                raise AUParseError(f"cannot parse AU token {tok!r} in {text!r}")
            side, num, inten, paren, unsure = m.groups()
            marker = "k" if paren and paren.lower() == "k" else ("?" if unsure else None)
            out.append(
                {
                    "au": int(num),
                    "side": side.upper() if side else None,
                    "intensity": inten.upper() if inten else None,
                    "count": int(paren) if paren and paren.isdigit() else None,
                    "marker": marker,
                    "alternative": k > 0,
                }
            )
    return out


def au_numbers(raw) -> list[int]:
    return sorted({d["au"] for d in parse_au_string(raw)})


def au_marked(raw) -> list[int]:
    """Sorted unique AU numbers that carry a coder's marker (``(k)``, ``?``)."""
    return sorted({d["au"] for d in parse_au_string(raw) if d["marker"]})
