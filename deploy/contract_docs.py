"""Generates the contract reference from the pydantic models, so it cannot drift from the code.

    .venv/bin/python deploy/contract_docs.py          # rewrite docs/schemas/ and the tables in docs/contract.md
    .venv/bin/python deploy/contract_docs.py --check  # exit 1 when any of them is stale (tests do this)

`make contract` runs this and deploy/asyncapi.py.

What it writes:
- `docs/schemas/inbound/<type>.json` for every event a CRM publishes and
  `docs/schemas/outbound/<type>.json` for every event the services publish: JSON Schema (draft
  2020-12) of the event's pydantic model, narrowed to its one `type`, with each inbound field's
  meaning as `description`;
- the field tables in `docs/contract.md`, between `<!-- generated: fields <type> -->` (one event)
  or `<!-- generated: outbound -->` (every outbound event) and `<!-- /generated -->`. The prose and
  the example records around them are written by hand.

The events are discovered, not listed: the `complaint.received` model, every member of the
case-activity union in `shared/events.py`, the approval answer of the compensation contract, and
every `Outbound` subclass with a literal `type` in the contract modules. A new event or field
therefore shows up here by itself; a new inbound field without a meaning in `MEANINGS` is an error.
"""
from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pydantic import BaseModel, create_model  # noqa: E402

from services.registry import SERVICES  # noqa: E402

CONTRACT_MD = ROOT / "docs" / "contract.md"
SCHEMA_DIR = ROOT / "docs" / "schemas"
REGENERATE = ".venv/bin/python deploy/contract_docs.py"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
OUTBOUND_MODULES = ("shared.events", *(f"{service.module}.contract" for service in SERVICES))

# What each inbound field means, for the tables and the schemas' `description`. Keys are the
# field's dotted path, or `<type>:<path>` where one event means something else by it.
MEANINGS: dict[str, str] = {
    "event_id": "Unique id of this event, chosen by the CRM (a UUID is fine). The same id again is a duplicate "
                "and changes nothing.",
    "type": "The event type.",
    "occurred_at": "When it happened at the CRM: RFC 3339 text with a UTC offset (`Z` or `+01:00`), year 2000 "
                   "to 2200. A bare number (Unix time) is refused.",
    "source": "Which CRM (or CRM instance) sent it, e.g. `crm-east`. Compensation budgets are kept per source.",
    "case_id": "The CRM's case id. Also the record key. Every event of one case carries the same id.",
    "automated": "`true` when a machine acted (an auto-acknowledgement, a bot). A JSON boolean, not `\"true\"`. "
                 "An automated contact never meets an SLA clock.",
    "by": "Who acted: `agent`, `bot` or `system`, in any letter case. `bot` and `system` count as automated. "
          "Absent, or any other value (a user name, say), means \"not said\": the event is not refused.",
    # complaint.received
    "channel": "Where the customer complained.",
    "public": "The customer complained in public (a review, a social post). Raises the publicity risk.",
    "customer": "The customer. Intake keeps the name and email to itself: they are never published or logged.",
    "customer.id": "The CRM's customer id.",
    "customer.name": "The customer's name.",
    "customer.email": "The customer's email address.",
    "customer.tier": "The CRM's loyalty tier. Absent: derived from `tenure_days`, `lifetime_value` and "
                     "`referrals`.",
    "customer.tenure_days": "Days since the customer's first purchase (a JSON integer).",
    "customer.lifetime_value": "What the customer has spent in total (a JSON number).",
    "customer.referrals": "How many customers this customer brought (a JSON integer).",
    "customer.timezone": "The customer's IANA time zone, e.g. `Europe/Berlin`. Follow-ups are timed in it. "
                         "A name the time-zone database does not know is refused.",
    "order": "The order the complaint is about, if any. Compensation is priced from it.",
    "order.id": "The CRM's order id.",
    "order.amount": "The order total in major units (`149.99`), a JSON number, never a string.",
    "order.currency": "ISO 4217 code in capitals, e.g. `EUR`.",
    "complaint.received:subject": "The complaint's subject line, in the customer's words.",
    "complaint.received:description": "The complaint in the customer's words. The classifier reads subject and "
                                      "description; they are never published or logged.",
    "crm_category": "The CRM's own category name. When the classification policy's `crm_categories` maps it, it "
                    "decides the category. Empty or blank means none.",
    # case activity
    "promise_id": "The CRM's id of the promise. `case.promise_kept` names the same id.",
    "due_at": "When the agent promised it would be done: RFC 3339 text with a UTC offset.",
    "case.promise_made:description": "What was promised.",
    "resolution": "How the case was resolved.",
    "root_cause": "Why it went wrong.",
    "improvement": "What was changed so it does not happen again. When not blank, followup plans an "
                   "improvement notice.",
    "customer_id": "The CRM's customer id (the `customer.id` of the complaint).",
    "customer.returned:customer_id": "The customer who came back (bought again). Their retention check-ins stop.",
    "survey.answered:customer_id": "The customer who answered. Followup leaves them alone for the policy's "
                                   "`cooldown_after_response`.",
    "followup_id": "The `followup_id` of the `followup.due` that invited them, when the CRM kept it.",
    "score": "The answer as a JSON number from 0 to 10 (NPS 0–10, CSAT 1–5). No free text.",
    # compensation approvals
    "compensation.approved:type": "`compensation.approved` (grant it) or `compensation.denied` (do not).",
    "compensation.denied:type": "`compensation.approved` (grant it) or `compensation.denied` (do not).",
    "compensation.approved:source": "Which CRM sent it (optional here).",
    "compensation.denied:source": "Which CRM sent it (optional here).",
    "compensation.approved:case_id": "The case (optional: `decision_id` says which). When given, also the key.",
    "compensation.denied:case_id": "The case (optional: `decision_id` says which). When given, also the key.",
    "decision_id": "The `decision_id` of the `compensation.pending_approval` being answered.",
    "approver": "Who answered.",
    "approver.role": "A role of the compensation policy's `authority` list, spelt exactly as there (shipped: "
                     "`agent`, `supervisor`, `manager`, `director`). Its limit must cover the amount.",
    "approver.id": "The CRM's id of the person who answered.",
    "note": "Free text: stored nowhere, never logged.",
}

_ID_PATTERN = r"^[^\x00-\x1f]+$"
_FRIENDLY_PATTERNS = {_ID_PATTERN: "no control characters", r"^[A-Z]{3}$": "three capital letters"}


@dataclass(frozen=True)
class Event:
    """One event type: its topic, its direction and the pydantic model (narrowed to this type)."""

    type: str
    topic: str
    direction: Literal["inbound", "outbound"]
    model: type[BaseModel]

    @property
    def schema_path(self) -> Path:
        return SCHEMA_DIR / self.direction / f"{self.type}.json"


def _literal_types(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("type")
    if field is None or get_origin(field.annotation) is not Literal:
        return ()
    return tuple(get_args(field.annotation))


def _narrowed(model: type[BaseModel], event_type: str) -> type[BaseModel]:
    """The model with `type` fixed to one value (same name, so the schema reads the same)."""
    if _literal_types(model) == (event_type,):
        return model
    required = model.model_fields["type"].is_required()
    default: Any = ... if required else event_type
    return create_model(model.__name__, __base__=model, __module__=model.__module__,
                        __doc__=model.__doc__, type=(Literal[event_type], default))


def inbound_events() -> list[Event]:
    """Every event a CRM publishes, in the order the contract document lists them."""
    from services.compensation.contract import ApprovalAnswer
    from services.intake.contract import Complaint
    from shared.events import CASE_ACTIVITY, COMPENSATION_APPROVALS, COMPLAINTS, CaseActivity

    events = [Event("complaint.received", COMPLAINTS, "inbound", Complaint)]
    union = get_args(CaseActivity)[0]  # Annotated[Union[...], discriminator]
    assert get_origin(union) is Union, union
    for member in get_args(union):
        (event_type,) = _literal_types(member)
        events.append(Event(event_type, CASE_ACTIVITY, "inbound", member))
    for event_type in _literal_types(ApprovalAnswer):
        events.append(Event(event_type, COMPENSATION_APPROVALS, "inbound", _narrowed(ApprovalAnswer, event_type)))
    return events


def _outbound_topic(event_type: str) -> str:
    from shared import events

    prefixes = {"complaint.classified": events.CLASSIFIED, "complaint.rejected": events.REJECTED,
                "sla.": events.SLA, "compensation.": events.COMPENSATION, "followup.": events.FOLLOWUPS}
    for prefix, topic in prefixes.items():
        if event_type.startswith(prefix):
            return topic
    raise ValueError(f"no outbound topic known for event type {event_type!r}: add it to _outbound_topic")


def outbound_events() -> list[Event]:
    """Every event the services publish: each `Outbound` subclass of the contract modules with a
    literal `type`, one entry per type. Where two models declare a type (a model per event and a
    model of the whole topic), the one with fewer types, the more exact, describes it."""
    from shared.events import Outbound

    chosen: dict[str, tuple[int, type[BaseModel]]] = {}
    for module_name in OUTBOUND_MODULES:
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if not (isinstance(obj, type) and issubclass(obj, Outbound) and obj.__module__ == module_name):
                continue
            types = _literal_types(obj)
            for event_type in types:
                best = chosen.get(event_type)
                if best is not None and best[0] == len(types) and best[1] is not obj:
                    raise ValueError(f"{best[1].__name__} and {obj.__name__} both declare {event_type!r}")
                if best is None or len(types) < best[0]:
                    chosen[event_type] = (len(types), obj)
    return [Event(event_type, _outbound_topic(event_type), "outbound", _narrowed(model, event_type))
            for event_type, (_n, model) in chosen.items()]


def meaning(event: Event, path: str) -> str | None:
    return MEANINGS.get(f"{event.type}:{path}") or MEANINGS.get(path)


# ---------- JSON Schema ----------
def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return schema["$defs"][ref.removeprefix("#/$defs/")]
    return node


def _variants(node: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The non-null alternatives of a property and whether null is allowed."""
    options = node.get("anyOf") or node.get("oneOf") or [node]
    return [o for o in options if o.get("type") != "null"], any(o.get("type") == "null" for o in options)


def _object_of(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    variants, _ = _variants(node)
    if len(variants) == 1:
        target = _resolve(schema, variants[0])
        if target.get("type") == "object" and "properties" in target:
            return target
    return None


def fields(schema: dict[str, Any], node: dict[str, Any] | None = None, prefix: str = ""):
    """(dotted path, property schema, required) for every field, nested objects after their parent."""
    node = schema if node is None else node
    required = set(node.get("required", ()))
    for name, prop in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        yield path, prop, name in required
        nested = _object_of(schema, prop)
        if nested is not None:
            yield from fields(schema, nested, f"{path}.")


def json_schema(event: Event) -> dict[str, Any]:
    """The event's JSON Schema, with the meaning of each inbound field as its description."""
    schema = event.model.model_json_schema(mode="validation")
    if event.direction == "outbound":
        # Every outbound event carries its envelope, whatever the model's defaults say.
        schema["required"] = [f for f in ("event_id", "type", "occurred_at") if f in schema["properties"]] + [
            f for f in schema.get("required", []) if f not in ("event_id", "type", "occurred_at")]
    missing = []
    for path, prop, _required in fields(schema):
        text = meaning(event, path)
        if text:
            prop["description"] = text  # beside a $ref too: allowed in draft 2020-12
        elif event.direction == "inbound":
            missing.append(path)
    if missing:
        raise ValueError(f"{event.type}: no meaning for {', '.join(missing)}: add it to MEANINGS in deploy/contract_docs.py")
    direction = "a CRM publishes" if event.direction == "inbound" else "the services publish"
    header = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{event.direction}/{event.type}.json",
        "title": event.type,
        "description": f"`{event.type}`, an event {direction} on the Kafka topic `{event.topic}`: one record, "
                       "value UTF-8 JSON, key = case_id. See docs/contract.md. Generated by deploy/contract_docs.py.",
    }
    schema.pop("title", None)
    schema.pop("description", None)
    return {**header, **schema}


def schema_files() -> dict[Path, str]:
    """Every committed schema file and its text."""
    out = {}
    for event in inbound_events() + outbound_events():
        out[event.schema_path] = json.dumps(json_schema(event), indent=2, ensure_ascii=False) + "\n"
    return out


# ---------- Markdown tables ----------
def _type_text(schema: dict[str, Any], prop: dict[str, Any]) -> str:
    variants, nullable = _variants(prop)
    names = []
    for variant in variants:
        target = _resolve(schema, variant)
        kind = target.get("type", "any")
        if "const" in target or "enum" in target:
            kind = "string"
        elif kind == "string" and target.get("format") == "date-time":
            kind = "timestamp"
        elif kind == "array":
            item = target.get("items", {})
            kind = f"array of {_resolve(schema, item).get('type', 'any')}s" if item else "array"
        names.append(kind)
    text = " or ".join(dict.fromkeys(names)) or "any"
    return f"{text} or null" if nullable else text


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _allowed_text(schema: dict[str, Any], prop: dict[str, Any]) -> str:
    variants, _ = _variants(prop)
    parts: list[str] = []
    for variant in variants:
        target = _resolve(schema, variant)
        if "const" in target:
            parts.append(f"exactly `{target['const']}`")
        if "enum" in target:
            parts.append("one of " + ", ".join(f"`{v}`" for v in target["enum"]))
        low, high = target.get("minLength"), target.get("maxLength")
        if high is not None:
            parts.append(f"{_number(low or 0)}–{_number(high)} characters" if low else f"up to {_number(high)} characters")
        elif low:
            parts.append(f"at least {_number(low)} characters")
        if "pattern" in target:
            parts.append(_FRIENDLY_PATTERNS.get(target["pattern"], f"pattern `{target['pattern']}`"))
        if target.get("format") == "date-time":
            parts.append("RFC 3339 with offset")
        if "minimum" in target or "maximum" in target:
            parts.append(f"{_number(target.get('minimum', '…'))} to {_number(target.get('maximum', '…'))}")
    return "; ".join(parts)


def _required_text(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "yes"
    if "default" in prop and prop["default"] not in (None, "", [], {}):
        return f"no (default `{json.dumps(prop['default'])}`)"
    return "no"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fields_table(event: Event, types: list[str] | None = None) -> str:
    """The Markdown table of one event's fields (nested ones as `parent.child`); `types`, when
    the table stands for several event types of one model, lists them in the `type` row."""
    schema = json_schema(event)
    if types and len(types) > 1:
        schema["properties"]["type"] = {"enum": types, "type": "string"}
    with_meaning = event.direction == "inbound"
    head = "| field | type | required | allowed values | meaning |" if with_meaning else \
        "| field | type | always there | allowed values |"
    rows = [head, "|---|---|---|---|---|" if with_meaning else "|---|---|---|---|"]
    for path, prop, required in fields(schema):
        cells = [f"`{path}`", _type_text(schema, prop), _required_text(prop, required), _allowed_text(schema, prop)]
        if with_meaning:
            cells.append(meaning(event, path) or "")
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(rows)


def outbound_reference(events: list[Event] | None = None) -> str:
    """Every outbound event, grouped by model: the types, topic, schema files and one field table."""
    events = outbound_events() if events is None else events
    groups: dict[str, list[Event]] = {}
    for event in events:
        groups.setdefault(event.model.__name__ + "@" + event.topic, []).append(event)
    parts = []
    for group in groups.values():
        types = ", ".join(f"`{e.type}`" for e in group)
        files = ", ".join(f"[{e.type}](schemas/outbound/{e.type}.json)" for e in group)
        parts.append(f"#### {types}\n\nTopic `{group[0].topic}`. Schemas: {files}.\n\n{fields_table(group[0], [e.type for e in group])}")
    return "\n\n".join(parts)


_BLOCK = re.compile(r"(<!-- generated: (?P<what>[^>]+?) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)


def render_contract(text: str) -> str:
    """docs/contract.md with every generated block rewritten. Raises ValueError for a block that
    names an unknown event, or when an inbound event has no block."""
    by_type = {e.type + ("" if e.direction == "inbound" else "@out"): e for e in inbound_events() + outbound_events()}
    seen: set[str] = set()

    def block(match: re.Match[str]) -> str:
        what = match["what"].strip()
        if what == "outbound":
            body = outbound_reference()
        elif what.startswith("fields "):
            name = what.removeprefix("fields ").strip()
            event = by_type.get(name) or by_type.get(f"{name}@out")
            if event is None:
                raise ValueError(f"docs/contract.md names an unknown event in <!-- generated: {what} -->")
            seen.add(name)
            body = fields_table(event)
        else:
            raise ValueError(f"docs/contract.md: unknown generated block {what!r}")
        return f"{match.group(1)}{body}\n{match.group(4)}"

    rendered = _BLOCK.sub(block, text)
    undocumented = [e.type for e in inbound_events() if e.type not in seen]
    if undocumented:
        raise ValueError("docs/contract.md has no `<!-- generated: fields TYPE -->` block for "
                         + ", ".join(undocumented) + ": add a section for each")
    return rendered


# ---------- the example records of docs/contract.md ----------
@dataclass(frozen=True)
class Example:
    """One example record of docs/contract.md: where it goes, its key and value bytes, and the
    reason it is rejected with (None: it is accepted). `value` None is a null value."""

    topic: str
    key: str | None
    value: bytes | None
    reason: str | None
    line: int

    @property
    def document(self) -> dict[str, Any] | None:
        """The value as a JSON object, when it is one."""
        try:
            data = json.loads(self.value or b"")
        except ValueError:
            return None
        return data if isinstance(data, dict) else None


_CAPTION = re.compile(
    r"(?:Rejected as `(?P<reason>\w+)` — )?[Rr]ecord on `(?P<topic>[^`]+)`, (?:key `(?P<key>[^`]*)`|(?P<nokey>no key))"
    r"(?:, value: (?P<special>zero bytes|null|over 1 MiB))?")
OVERSIZE_CHARS = 1_100_000


def examples(text: str | None = None) -> list[Example]:
    """Every example record of docs/contract.md, in document order. A caption (`Record on
    `TOPIC`, key `KEY`` or `Rejected as `REASON` — record on …`) introduces the fenced block that
    follows it, whose content is the value's exact text; `value: zero bytes`, `value: null` and
    `value: over 1 MiB` (the first complaint example with a description of 1.1 million characters)
    stand for values no block can show. ValueError for a caption without a value."""
    text = CONTRACT_MD.read_text(encoding="utf-8") if text is None else text
    lines = text.splitlines()
    found: list[tuple[re.Match[str], int, str | None]] = []
    paragraph: list[str] = []
    start = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            caption = _CAPTION.search(" ".join(paragraph))
            if caption is not None and not caption["special"]:
                found.append((caption, start + 1, "\n".join(lines[i + 1:end])))
            paragraph, i = [], end + 1
            continue
        if line.strip():
            if not paragraph:
                start = i
            paragraph.append(line.strip())
            caption = _CAPTION.search(" ".join(paragraph))
            if caption is not None and caption["special"] and (i + 1 == len(lines) or not lines[i + 1].strip()):
                found.append((caption, start + 1, None))
        else:
            caption = _CAPTION.search(" ".join(paragraph)) if paragraph else None
            if caption is not None and not caption["special"] and not _fence_follows(lines, i):
                raise ValueError(f"docs/contract.md:{start + 1}: an example caption without a ``` block after it")
            if not (caption is not None and not caption["special"]):
                paragraph = []
        i += 1
    out = []
    first_complaint: dict[str, Any] | None = None
    for caption, line_no, body in found:
        special = caption["special"]
        if body is not None:
            value: bytes | None = body.encode("utf-8")
        elif special == "zero bytes":
            value = b""
        elif special == "null":
            value = None
        else:
            if first_complaint is None:
                raise ValueError(f"docs/contract.md:{line_no}: `over 1 MiB` needs a complaint example before it")
            value = json.dumps({**first_complaint, "description": "x" * OVERSIZE_CHARS}).encode("utf-8")
        example = Example(caption["topic"], None if caption["nokey"] else caption["key"], value, caption["reason"], line_no)
        if first_complaint is None and example.reason is None and (example.document or {}).get("type") == "complaint.received":
            first_complaint = example.document
        out.append(example)
    return out


def _fence_follows(lines: list[str], i: int) -> bool:
    for line in lines[i:]:
        if line.strip():
            return line.startswith("```")
    return False


def stale() -> list[str]:
    """Paths (relative to the repository) that differ from what this generator writes now."""
    out = []
    expected = schema_files()
    for path, text in expected.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(str(path.relative_to(ROOT)))
    for path in sorted(SCHEMA_DIR.rglob("*.json")) if SCHEMA_DIR.exists() else []:
        if path not in expected:
            out.append(f"{path.relative_to(ROOT)} (no such event any more)")
    current = CONTRACT_MD.read_text(encoding="utf-8")
    if render_contract(current) != current:
        out.append(str(CONTRACT_MD.relative_to(ROOT)))
    return out


def write() -> list[str]:
    """Rewrites the schemas and the generated blocks of docs/contract.md; returns what changed."""
    changed = stale()
    expected = schema_files()
    for path in SCHEMA_DIR.rglob("*.json") if SCHEMA_DIR.exists() else []:
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    CONTRACT_MD.write_text(render_contract(CONTRACT_MD.read_text(encoding="utf-8")), encoding="utf-8")
    return changed


def main(argv: list[str]) -> int:
    if "--check" in argv:
        outdated = stale()
        for name in outdated:
            print(f"{name} is stale: run {REGENERATE} (or make contract)")
        return 1 if outdated else 0
    for name in write():
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
