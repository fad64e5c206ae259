"""setup_logging: every logger, the libraries' own included, through one handler in one format."""
from __future__ import annotations

import io
import logging
import re
import warnings

import pytest

from shared.service import BROKER_LOGGER, setup_logging

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.\-]+ \S")


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def test_libraries_own_colour_handlers_are_replaced_by_the_one_handler(restored_logging):
    from faststream._internal.logger.formatter import ColourizedFormatter

    # What faststream does at import and at broker start: a logger of its own, colour, no propagation.
    coloured = logging.getLogger("faststream.test-colour")
    own = logging.StreamHandler(io.StringIO())
    own.setFormatter(ColourizedFormatter("%(levelname)8s - %(message)s", use_colors=True))
    coloured.addHandler(own)
    coloured.propagate = False

    out = io.StringIO()
    setup_logging("INFO", stream=out)
    coloured.warning("from a library")
    logging.getLogger(BROKER_LOGGER).info("from the broker")
    logging.getLogger("shared.timers").info("from us")
    logging.getLogger("shared.timers").debug("not at INFO")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's warning", DeprecationWarning, stacklevel=1)

    lines = out.getvalue().splitlines()
    assert "\x1b[" not in out.getvalue()
    assert [line for line in lines if not LINE.match(line)] == []
    assert [line.split(" ", 3)[3] for line in lines[:3]] == [
        "faststream.test-colour from a library", "faststream.access.kafka from the broker", "shared.timers from us"]
    assert "a library's warning" in lines[3] and " WARNING py.warnings " in lines[3]
    assert len(lines) == 4
    assert own.stream.getvalue() == "" and coloured.handlers == [] and coloured.propagate
