"""The ids a log line is about: the inbound event, its case and its trace, attached to every log
record written while they are bound (`bound(...)`), so a JSON log line carries them as fields and
one complaint's journey can be followed across services by `case_id` or `trace_id`.

Only ids: never names, emails or free text (README, "Personal data"). A context variable is the
right carrier here, unlike for a batch's state: it is read-only context for log lines, set and
reset around one record's handling, and nothing depends on it for correctness.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("event_id", "case_id", "trace_id")
_bound: ContextVar[dict[str, str]] = ContextVar("helpdesk_log_ids", default={})


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Binds the given ids (None ones are skipped; unknown names raise ValueError) for the
    duration of the block, on top of what is already bound."""
    unknown = set(ids) - set(FIELDS)
    if unknown:
        raise ValueError(f"not a log id: {sorted(unknown)} (one of {FIELDS})")
    token = _bound.set({**_bound.get(), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


class IdsFilter(logging.Filter):
    """Copies the bound ids onto each record (as attributes `event_id`, `case_id`, `trace_id`),
    where the JSON formatter finds them; ids given explicitly with `extra=` win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _bound.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
