"""`helpdesk rejected`: the records the services refused (helpdesk.complaints.rejected.v1), and
re-publishing them once the sender or a policy was fixed.

A replay re-checks each original record with the parsers of the services that consume its topic
(and the key check every consumer makes) and re-publishes only those that would now be accepted;
the others are skipped and listed with the reason they would be rejected again. An approval answer
compensation refused for the state it found (`APPROVAL_REFUSALS`) is never re-published: compensation
recorded its `event_id` when it refused it, so the same bytes again would only be a duplicate; the
approver has to answer again from the CRM, with a new `event_id`.

Everything printed that came from a record (case ids, keys, errors) goes through `printable`, so a
control character in it cannot drive the terminal.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import typer

app = typer.Typer(help="Records the services refused, and re-publishing them after a fix.", no_args_is_help=True)

TIME_FORMAT = "%Y-%m-%d %H:%M:%SZ"
DEFAULT_WIDTH = 160  # columns, when stdout is not a terminal and COLUMNS is not set
ERRORS_SHOWN = 5  # a record's errors shown before "+N more"

# Why a record can be rejected (docs/contract.md, "Reasons"): what the parsers and the key check
# say, then compensation's refusals of a well-formed approval answer for the state it found.
PARSE_REASONS = ("empty", "too_large", "not_json", "not_an_object", "invalid_text", "unknown_type", "invalid_fields",
                 "key_mismatch")
APPROVAL_REFUSALS = ("unknown_decision", "not_pending", "unknown_approver_role", "approver_not_authorised")
REASONS = PARSE_REASONS + APPROVAL_REFUSALS
ANSWER_AGAIN = "cannot be replayed: the approver must answer again from the CRM (a new event_id)"


def _settings():
    from shared.settings import get_settings

    return get_settings()


def console_width(environ: Mapping[str, str], is_tty: bool) -> int | None:
    """Columns to render tables in: `COLUMNS` when set to a positive number, else the terminal's
    (None: rich measures it), else `DEFAULT_WIDTH` when stdout is a pipe or a file."""
    columns = environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if is_tty else DEFAULT_WIDTH


def _console():
    from rich.console import Console

    return Console(width=console_width(os.environ, sys.stdout.isatty()))


_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(value: Any) -> str:
    """`value` as text safe for a terminal: control, format (bidi overrides), surrogate, private and
    unassigned characters and line separators are shown escaped (`\\x1b`, `\\x00`, `\\u202e`).
    None is ""."""
    if value is None:
        return ""
    text = str(value)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == " " or unicodedata.category(ch) not in _UNPRINTABLE:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out)


def errors_text(errors: list[Any], separator: str = "; ") -> str:
    """A record's errors, printable: the first `ERRORS_SHOWN`, then `+N more` for the rest."""
    shown = [printable(e) for e in errors[:ERRORS_SHOWN]]
    if len(errors) > ERRORS_SHOWN:
        shown.append(f"+{len(errors) - ERRORS_SHOWN} more")
    return separator.join(shown)


def _usage(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def inbound_topics() -> tuple[str, ...]:
    """The topics records can be rejected from (without the prefix): the CRM's three, and
    intake's classified topic, which sla, compensation and followup read."""
    from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION_APPROVALS, COMPLAINTS

    return (COMPLAINTS, CASE_ACTIVITY, COMPENSATION_APPROVALS, CLASSIFIED)


def checked_filters(reason: str | None, topic: str | None) -> tuple[str | None, str | None]:
    """`--reason` and `--topic` as rejections name them: a topic may be given with or without
    `HELPDESK_TOPIC_PREFIX` (rejections carry it without). Exits 2 naming the known values when
    either is not one."""
    if reason is not None and reason not in REASONS:
        _usage(f"unknown reason {printable(reason)!r}; the reasons are: {', '.join(REASONS)}")
    if topic is not None:
        prefix = _settings().helpdesk_topic_prefix
        if prefix and topic.startswith(prefix) and topic[len(prefix):] in inbound_topics():
            topic = topic[len(prefix):]
        if topic not in inbound_topics():
            shown = ", ".join(f"{prefix}{t}" if prefix else t for t in inbound_topics())
            _usage(f"unknown topic {printable(topic)!r}; records are rejected from: {shown}"
                   + (" (the prefix may be left out)" if prefix else ""))
    return reason, topic


def matches(event: dict[str, Any], reason: str | None, topic: str | None, case_id: str | None) -> bool:
    """Whether a `complaint.rejected` event passes the filters (None: any)."""
    return ((reason is None or event.get("reason") == reason) and (topic is None or event.get("topic") == topic)
            and (case_id is None or event.get("case_id") == case_id))


def read_rejected() -> list[dict[str, Any]]:
    """Every `complaint.rejected` event on the rejected topic, oldest first (across partitions)."""
    from shared.events import REJECTED
    from shared.kafka_reader import by_time, read_topic

    return by_time(asyncio.run(read_topic(_settings(), REJECTED, positions=True)))


def utc_text(event: dict[str, Any]) -> str:
    """When a rejection happened, in UTC, e.g. `2026-11-29 17:03:11Z`."""
    from shared.kafka_reader import event_time

    return event_time(event).astimezone(timezone.utc).strftime(TIME_FORMAT)


@app.command("list")
def rejected_list(
    reason: str | None = typer.Option(None, help="only this reason: " + ", ".join(REASONS)),
    topic: str | None = typer.Option(None, help="only records from this inbound topic (with or without the prefix)"),
    case_id: str | None = typer.Option(None, "--case", help="only this case"),
    limit: int = typer.Option(50, min=1, help="at most this many (at least 1), newest last"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line (the rejection events as "
                                 "published, without `raw`) instead of the table"),
) -> None:
    """List rejected records with their reasons, oldest first and newest last; times in UTC.

    Text from the records (case ids, errors) is shown with control characters escaped (`\\x1b`).
    With `--json`, one line per rejection: the event's fields (no `raw`: the original bytes may hold
    personal data; `helpdesk rejected replay` uses them) plus `rejected_at` in UTC."""
    from rich.table import Table
    from rich.text import Text

    reason, topic = checked_filters(reason, topic)
    events = [e for e in read_rejected() if matches(e, reason, topic, case_id)]
    shown = events[-limit:]
    if as_json:
        for e in shown:
            fields = {k: v for k, v in e.items() if k != "raw" and not k.startswith("_")}
            typer.echo(json.dumps({**fields, "rejected_at": utc_text(e)}, ensure_ascii=True, sort_keys=True))
        return
    table = Table(title=f"{len(events)} rejected record(s)" + (f", showing the last {len(shown)}" if len(shown) < len(events) else ""))
    for col in ("rejected at (UTC)", "topic", "partition@offset", "case", "reason", "errors", "by"):
        table.add_column(col, no_wrap=col == "rejected at (UTC)")
    for e in shown:
        errors = e.get("errors") if isinstance(e.get("errors"), list) else []
        # Text, not markup: a "[red]" in a case id is shown, not obeyed.
        table.add_row(*(Text(printable(c)) for c in (utc_text(e), e.get("topic"), f"{e.get('partition')}@{e.get('offset')}",
                                                     e.get("case_id"), e.get("reason"))),
                      Text(errors_text(errors, "\n")), Text(printable(e.get("rejected_by"))))
    _console().print(table)


# ---------- replay ----------
@dataclass(frozen=True)
class Original:
    """One record a service rejected, once however many services rejected it."""

    topic: str  # without the topic prefix
    partition: int
    offset: int
    case_id: str | None
    key: str | None  # the record's key as the rejection reported it
    raw: bytes | None  # None: the rejection carried no readable bytes
    reasons: tuple[str, ...]  # why it was rejected then, by each service

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Verdict:
    """What the consumers of its topic would do with `original` now: `rejection` None means
    accepted, and `key` is the key to publish it with (its own, or its case_id when it had none)."""

    original: Original
    rejection: Any = None  # shared.inbound.RejectedInput
    key: str | None = None


def originals(events: list[dict[str, Any]]) -> list[Original]:
    """The distinct original records behind `complaint.rejected` events, in their topic's order
    (topic, partition, offset), so a case's records go back in the order they first came."""
    found: dict[tuple[str, int, int], Original] = {}
    for e in events:
        where = (str(e.get("topic", "")), _int(e.get("partition")), _int(e.get("offset")))
        seen = found.get(where)
        if seen is not None:
            found[where] = Original(*where, seen.case_id or e.get("case_id"), seen.key, seen.raw,
                                    seen.reasons + (str(e.get("reason", "")),))
            continue
        try:
            raw = base64.b64decode(e["raw"], validate=True) if isinstance(e.get("raw"), str) else None
        except (binascii.Error, ValueError):
            raw = None
        found[where] = Original(*where, e.get("case_id"), e.get("key"), raw, (str(e.get("reason", "")),))
    return [found[k] for k in sorted(found)]


def _int(value: Any) -> int:
    return value if isinstance(value, int) else -1


def inbound_parsers() -> dict[str, list[Callable[[bytes | None], Any]]]:
    """For each inbound topic, the parser of every service that consumes it (the functions their
    handlers use): a record is accepted only if all of them accept it."""
    from services.compensation.contract import parse_answer, parse_classified as compensation_classified
    from services.intake.contract import parse_complaint
    from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION_APPROVALS, COMPLAINTS
    from shared.inbound import parse_activity, parse_classified

    return {
        COMPLAINTS: [parse_complaint],  # intake
        CASE_ACTIVITY: [parse_activity],  # sla and followup (compensation only picks case.reopened)
        CLASSIFIED: [parse_classified, compensation_classified],  # sla and followup; compensation
        COMPENSATION_APPROVALS: [parse_answer],  # compensation
    }


def recheck(original: Original, parsers: dict[str, list[Callable[[bytes | None], Any]]]) -> Verdict:
    """Runs `original` through its topic's parsers and the key check, as the consumers would now."""
    from shared.inbound import RejectedInput, check_key

    if original.topic not in parsers:
        return Verdict(original, RejectedInput("not_replayable", ["no service consumes this topic"]))
    if original.raw is None:
        return Verdict(original, RejectedInput("not_replayable", ["the rejection carries no original bytes"]))
    refused = sorted(set(original.reasons) & set(APPROVAL_REFUSALS))
    if refused:
        # Compensation recorded the answer's event_id when it refused it: the same bytes again are
        # a duplicate whatever changed since (a raised limit, a decision pending again).
        return Verdict(original, RejectedInput("not_replayable", [f"refused as {', '.join(refused)}; {ANSWER_AGAIN}"]))
    key = original.key.encode("utf-8") if original.key else None
    try:
        events = [parse(original.raw) for parse in parsers[original.topic]]
        for event in events:
            check_key(key, event)
    except RejectedInput as exc:
        return Verdict(original, exc)
    case_id = next((e.case_id for e in events if isinstance(getattr(e, "case_id", None), str)), None)
    return Verdict(original, None, original.key or case_id)


def _line(verdict: Verdict) -> str:
    o = verdict.original
    text = f"  {printable(o.where)}  case {printable(o.case_id) or '-'}"
    if verdict.rejection is None:
        return f"{text}  (was {printable(', '.join(sorted(set(o.reasons))))})"
    errors = errors_text(verdict.rejection.errors)
    return f"{text}  {printable(verdict.rejection.reason)}" + (f": {errors}" if errors else "")


async def publish(verdicts: list[Verdict]) -> int:
    """Re-publishes the accepted originals to their topics (prefix applied), one at a time in
    order; the number published."""
    from aiokafka import AIOKafkaProducer

    from shared.kafka import client_args

    settings = _settings()
    producer = AIOKafkaProducer(**client_args(settings), max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for v in verdicts:
            await producer.send_and_wait(settings.topic(v.original.topic), value=v.original.raw,
                                         key=v.key.encode("utf-8") if v.key else None)
    finally:
        await producer.stop()
    return len(verdicts)


@app.command("replay")
def rejected_replay(
    reason: str | None = typer.Option(None, help="only records rejected for this reason: " + ", ".join(REASONS)),
    topic: str | None = typer.Option(None, help="only records from this inbound topic (with or without the prefix)"),
    case_id: str | None = typer.Option(None, "--case", help="only this case"),
    all_: bool = typer.Option(False, "--all", help="every rejected record on the topic (asks first, see --yes)"),
    yes: bool = typer.Option(False, "--yes", help="with --all: do not ask (for scripts)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would be re-published and skipped, publish nothing"),
) -> None:
    """Re-publish rejected records to the topic they came from (after the sender or a policy was fixed).

    Needs a filter (--reason, --topic, --case), or --all with a confirmation (--yes for scripts).

    Each record is checked first, as the services that read its topic would: its value and its key.

    Only those that would now be accepted are published, each once however many services rejected it.

    The others are skipped and listed with the reason they would be rejected again.

    Approval answers compensation refused (unknown_decision, not_pending, unknown_approver_role,
    approver_not_authorised) are never re-published: their event_id is recorded, so the approver
    must answer again from the CRM, with a new event_id."""
    filtered = any(v is not None for v in (reason, topic, case_id))
    if all_ and filtered:
        _usage("--all replays every rejected record: give either --all or filters, not both")
    if not all_ and not filtered:
        _usage("say what to replay: --reason, --topic and/or --case, or --all for every rejected record "
               "(asks for confirmation; --yes for scripts)")
    reason, topic = checked_filters(reason, topic)
    parsers = inbound_parsers()
    verdicts = [recheck(o, parsers) for o in originals([e for e in read_rejected() if matches(e, reason, topic, case_id)])]
    accepted = [v for v in verdicts if v.rejection is None]
    skipped = [v for v in verdicts if v.rejection is not None]
    again = [v for v in skipped if v.rejection.reason != "not_replayable"]
    unreplayable = [v for v in skipped if v.rejection.reason == "not_replayable"]
    verb = "would be" if dry_run else "to be"
    typer.echo(f"{len(verdicts)} rejected record(s) match: {len(accepted)} {verb} re-published, "
               f"{len(skipped)} skipped ({len(again)} would be rejected again, {len(unreplayable)} cannot be replayed)"
               + (" — dry run: nothing published" if dry_run else ""))
    if accepted:
        typer.echo("would re-publish:" if dry_run else "to re-publish:")
        for v in accepted:
            typer.echo(_line(v))
    if again:
        typer.echo("skipped, would be rejected again:")
        for v in again:
            typer.echo(_line(v))
    if unreplayable:
        typer.echo("skipped, cannot be replayed:")
        for v in unreplayable:
            typer.echo(_line(v))
    if dry_run or not accepted:
        return
    if all_ and not yes:
        try:
            confirmed = typer.confirm(f"Re-publish {len(accepted)} record(s), every rejected record that would now "
                                      "be accepted?", default=False)
        except typer.Abort:
            typer.echo("", err=True)  # no answer (stdin closed or empty): end the prompt's line
            confirmed = False
        if not confirmed:
            typer.secho("not confirmed: nothing re-published (pass --yes to replay --all from a script)",
                        err=True, fg=typer.colors.RED)
            raise typer.Exit(1)
    published = asyncio.run(publish(accepted))
    typer.echo(f"re-published {published} record(s)" + (f", skipped {len(skipped)}" if skipped else ""))
