"""Durations as policy files write them: `30s`, `15m`, `4h`, `2d`, `1w`, or combined `1h30m`."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Every form `parse_duration` accepts, for error messages (keep in step with _PART and _UNIT_SECONDS).
DURATION_FORMS = ("a number and a unit: ms, s, m, h, d or w ('500ms', '30s', '15m', '4h', '2d', '1w'; "
                  "decimals allowed: '1.5h'), several of them combined ('1h30m'), or a bare number of seconds (45)")


def parse_duration(value: object) -> timedelta:
    """Parses `30s`, `15m`, `4h`, `2d`, `1w`, `1h30m`, `500ms`, `1.5h`; a bare number is seconds.

    Raises ValueError, whose message lists every accepted form (`DURATION_FORMS`), for anything
    else: a negative number, a boolean, an unknown unit, words."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"a duration is expected: {DURATION_FORMS}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"a duration is expected: {DURATION_FORMS}")
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError(f"empty duration: write {DURATION_FORMS}")
    pos, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {value!r}: write {DURATION_FORMS}")
    return timedelta(seconds=seconds)


def written_in_days(value: object) -> bool:
    """True when a valid duration text uses days or weeks (`2d`, `1w`, `1d12h`), which count 24 or
    168 hours of whatever time the reader counts: on a business-hours calendar, working hours."""
    if not isinstance(value, str):
        return False
    try:
        parse_duration(value)
    except ValueError:
        return False
    return any(part.group(2) in ("d", "w") for part in _PART.finditer(value.strip().lower().replace(" ", "")))


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
