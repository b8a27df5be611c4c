"""A rate as operators write it (``100/minute``, ``5/min``, ``50/second``, ``1000/2h``).

No Agora imports: the settings module parses rates with this at start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+?)s?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` events per ``period_s`` seconds."""

    limit: int
    period_s: int


def parse_rate(text: str | Rate) -> Rate:
    if isinstance(text, Rate):
        return text
    match = _RATE.match(text.lower())
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None:
        raise ValueError(f"{text!r} is not a rate like 100/minute, 5/min or 50/second")
    limit, multiple = int(match.group(1)), int(match.group(2) or 1)
    if limit < 1 or multiple < 1:
        raise ValueError(f"{text!r} is not a rate: count and period must be at least 1")
    return Rate(limit=limit, period_s=multiple * unit)
