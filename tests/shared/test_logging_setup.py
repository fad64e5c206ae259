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


def test_json_lines_carry_the_bound_ids_and_no_more(restored_logging):
    import json

    from shared.logcontext import bound

    out = io.StringIO()
    setup_logging("INFO", stream=out, fmt="json", service="sla")
    log = logging.getLogger("services.sla.service")
    with bound(event_id="ev-1", case_id="CRM-7", trace_id=None):
        log.info("case %s: clocks started", "CRM-7")
        with bound(trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
            log.warning("nested")
    log.info("after")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")

    first, nested, after, failed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert first["level"] == "INFO" and first["logger"] == "services.sla.service" and first["service"] == "sla"
    assert first["message"] == "case CRM-7: clocks started"
    assert (first["event_id"], first["case_id"]) == ("ev-1", "CRM-7") and "trace_id" not in first
    assert nested["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and nested["case_id"] == "CRM-7"
    assert not {"event_id", "case_id", "trace_id"} & set(after), "ids are unbound after their block"
    assert first["timestamp"].endswith("+00:00")
    assert "RuntimeError: boom" in failed["exc_info"]
    assert "\x1b[" not in out.getvalue()


def test_unknown_formats_and_ids_are_refused():
    from shared.logcontext import bound
    from shared.settings import Settings

    with pytest.raises(ValueError, match="LOG_FORMAT"):
        setup_logging("INFO", stream=io.StringIO(), fmt="xml")
    with pytest.raises(ValueError, match="customer_name"):
        with bound(customer_name="Ada"):
            pass
    with pytest.raises(ValueError):
        Settings(log_format="xml")
