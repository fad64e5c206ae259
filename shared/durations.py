"""Durations as policy files write them: `30s`, `15m`, `4h`, `2d`, `1w`, or combined `1h30m`.

Every duration is at most `MAX_DURATION` (365 days). No policy means more: the longest shipped one
is followup's 90-day lookback, an SLA target or an escalation of a year is already none, and a
deadline must stay far inside what a date can hold (`99999999w` overflows Python's datetime and
would stop the consumer that computes it). Anything longer is refused at validation, with file,
line and field, like any other invalid value.
"""
from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BARE_SECONDS = re.compile(r"\d+(?:\.\d+)?")

MAX_DURATION = timedelta(days=365)
"""The longest duration any policy may give (see the module's docstring)."""
MAX_DURATION_TEXT = "365 days ('365d', '52w', '8760h')"

# Every form `parse_duration` accepts, for error messages (keep in step with _PART and _UNIT_SECONDS).
DURATION_FORMS = ("a number and a unit: ms, s, m, h, d or w ('500ms', '30s', '15m', '4h', '2d', '1w'; "
                  "decimals allowed: '1.5h'), several of them combined ('1h30m'), or a bare number of seconds (45, or "
                  "quoted: '45'); at most " + MAX_DURATION_TEXT)


def _shown(written: object) -> str:
    """`written` for a message, short: a huge int cannot even be turned into text (Python limits
    int-to-str conversion to 4,300 digits) and a 5,000-digit string is no use in a log line."""
    if isinstance(written, int) and not -10**18 < written < 10**18:
        return "a number of more than 18 digits"
    text = repr(written)
    return text if len(text) <= 42 else text[:40] + "…" + text[-1]


def _bounded(seconds: float | int, written: object) -> timedelta:
    """`seconds` as a timedelta; ValueError when negative, not finite or above MAX_DURATION."""
    if isinstance(seconds, float) and math.isnan(seconds):
        raise ValueError(f"a duration is expected: {DURATION_FORMS}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION.total_seconds():  # also infinity and ints too large for a timedelta
        raise ValueError(f"duration {_shown(written)} is too long: a policy duration is at most {MAX_DURATION_TEXT}")
    return timedelta(seconds=seconds)


def parse_duration(value: object) -> timedelta:
    """Parses `30s`, `15m`, `4h`, `2d`, `1w`, `1h30m`, `500ms`, `1.5h`; a bare number is seconds,
    written as a YAML number (`45`) or quoted (`"45"`).

    Raises ValueError, whose message lists every accepted form (`DURATION_FORMS`), for anything
    else: a negative number, a boolean, an unknown unit, words; and ValueError for a duration
    longer than `MAX_DURATION` (never OverflowError, however many digits)."""
    if isinstance(value, timedelta):
        if value > MAX_DURATION:
            raise ValueError(f"duration {value} is too long: a policy duration is at most {MAX_DURATION_TEXT}")
        return value
    if isinstance(value, bool):
        raise ValueError(f"a duration is expected: {DURATION_FORMS}")
    if isinstance(value, (int, float)):
        return _bounded(value, value)
    if not isinstance(value, str):
        raise ValueError(f"a duration is expected: {DURATION_FORMS}")
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError(f"empty duration: write {DURATION_FORMS}")
    if _BARE_SECONDS.fullmatch(text):  # "45": what the message calls a bare number of seconds
        return _bounded(float(text), value)
    pos, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {_shown(value)}: write {DURATION_FORMS}")
    return _bounded(seconds, value)  # float() of any number of digits is at worst inf: no OverflowError


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
