"""docs/contract.md, docs/schemas/ and the inbound payloads of docs/asyncapi/: generated from the
models, not stale, and every example record in the contract does what the contract says."""
from __future__ import annotations

import importlib
import inspect
import json
import re

import pytest
from ruamel.yaml import YAML

from deploy import contract_docs
from services.compensation.contract import parse_answer
from services.intake.contract import parse_complaint
from services.registry import NAMES
from shared.events import ACTIVITY_TYPES, CASE_ACTIVITY, COMPENSATION_APPROVALS, COMPLAINTS
from shared.inbound import RejectedInput, parse_activity
from tests.deploy.files import ROOT

PARSERS = {COMPLAINTS: parse_complaint, CASE_ACTIVITY: parse_activity, COMPENSATION_APPROVALS: parse_answer}
# Reasons the parsers give; key_mismatch is the key check's; the rest are refusals of a parsed
# approval answer by the compensation service (they need its database: see the integration test).
PARSE_REASONS = {"empty", "too_large", "not_json", "not_an_object", "invalid_text", "unknown_type", "invalid_fields"}
APPROVAL_REFUSALS = {"unknown_decision", "not_pending", "unknown_approver_role", "approver_not_authorised"}
REGENERATE = "run `make contract` (or .venv/bin/python deploy/contract_docs.py)"


def test_schemas_and_the_field_tables_are_what_the_generator_makes_from_the_models_now():
    outdated = contract_docs.stale()
    assert not outdated, f"stale: {outdated}: {REGENERATE}"


def test_a_stale_table_or_schema_is_noticed(tmp_path, monkeypatch):
    text = contract_docs.CONTRACT_MD.read_text(encoding="utf-8")
    edited = text.replace("| `customer.timezone` |", "| `customer.time_zone` |", 1)
    assert edited != text
    monkeypatch.setattr(contract_docs, "ROOT", tmp_path)
    monkeypatch.setattr(contract_docs, "CONTRACT_MD", tmp_path / "contract.md")
    monkeypatch.setattr(contract_docs, "SCHEMA_DIR", tmp_path / "schemas")
    (tmp_path / "contract.md").write_text(edited, encoding="utf-8")
    assert "contract.md" in contract_docs.stale()
    contract_docs.write()
    assert (tmp_path / "contract.md").read_text(encoding="utf-8") == text
    assert contract_docs.stale() == []
    path = tmp_path / "schemas" / "inbound" / "complaint.received.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["required"].remove("channel")
    path.write_text(json.dumps(schema), encoding="utf-8")
    (tmp_path / "schemas" / "inbound" / "case.escalated.json").write_text("{}", encoding="utf-8")
    assert contract_docs.stale() == ["schemas/inbound/complaint.received.json",
                                     "schemas/inbound/case.escalated.json (no such event any more)"]


def test_every_inbound_event_has_its_table_a_schema_and_a_valid_example():
    events = contract_docs.inbound_events()
    assert {e.type for e in events} == {"complaint.received", *ACTIVITY_TYPES, "compensation.approved",
                                        "compensation.denied"}
    text = contract_docs.CONTRACT_MD.read_text(encoding="utf-8")
    documented = {(e.document or {}).get("type") for e in contract_docs.examples() if e.reason is None}
    for event in events:
        assert f"<!-- generated: fields {event.type} -->" in text
        assert event.schema_path.is_file()
        assert event.type in documented, f"docs/contract.md has no valid example of {event.type}"


def test_a_new_inbound_field_without_a_meaning_is_refused(monkeypatch):
    monkeypatch.delitem(contract_docs.MEANINGS, "customer.timezone")
    with pytest.raises(ValueError, match="customer.timezone"):
        contract_docs.json_schema(contract_docs.inbound_events()[0])


def test_outbound_schemas_follow_the_contract_modules():
    types = {e.type for e in contract_docs.outbound_events()}
    assert {"complaint.classified", "complaint.rejected", "sla.breached", "sla.retargeted",
            "compensation.pending_approval", "followup.due"} <= types
    for event in contract_docs.outbound_events():
        schema = json.loads(event.schema_path.read_text())
        assert schema["properties"]["type"]["const"] == event.type
        assert {"event_id", "type", "occurred_at"} <= set(schema["required"])


@pytest.mark.parametrize("example", [e for e in contract_docs.examples() if e.reason is None],
                         ids=lambda e: f"line{e.line}")
def test_every_valid_example_parses_with_the_real_parser_and_its_key_is_its_case_id(example):
    from shared.inbound import check_key  # the key check (issue 13)

    event = PARSERS[example.topic](example.value)
    assert example.key is None or example.key == event.case_id
    assert check_key(example.key.encode() if example.key is not None else None, event) is (example.key is not None)


@pytest.mark.parametrize("example", [e for e in contract_docs.examples() if e.reason is not None],
                         ids=lambda e: f"line{e.line}-{e.reason}")
def test_every_invalid_example_is_refused_for_the_documented_reason(example):
    parse = PARSERS[example.topic]
    if example.reason in PARSE_REASONS:
        with pytest.raises(RejectedInput) as refused:
            parse(example.value)
        assert refused.value.reason == example.reason, refused.value.errors
    elif example.reason == "key_mismatch":
        from shared.inbound import check_key  # the key check (issue 13)

        event = parse(example.value)
        with pytest.raises(RejectedInput) as refused:
            check_key(example.key.encode(), event)
        assert refused.value.reason == "key_mismatch"
    else:
        assert example.reason in APPROVAL_REFUSALS and example.topic == COMPENSATION_APPROVALS
        assert parse(example.value).decision_id  # a well-formed answer the service then refuses


def test_the_documented_errors_of_the_first_invalid_complaint_are_what_intake_says():
    example = next(e for e in contract_docs.examples() if e.reason == "invalid_fields" and e.topic == COMPLAINTS)
    with pytest.raises(RejectedInput) as refused:
        parse_complaint(example.value)
    text = " ".join(contract_docs.CONTRACT_MD.read_text(encoding="utf-8").split())
    for error in refused.value.errors:
        assert f"`{error}`" in text, error


def test_every_reason_the_code_can_give_is_documented_with_an_invalid_example():
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "shared").glob("*.py")]
    for service in NAMES:  # the consumers (not the CLI's own verdicts)
        sources += [p.read_text(encoding="utf-8") for p in (ROOT / "services" / service).rglob("*.py")]
    reasons = {m for text in sources for m in re.findall(r'RejectedInput\(\s*"(\w+)"', text)}
    layer = (ROOT / "services" / "compensation" / "service.py").read_text(encoding="utf-8")  # its _refuse calls
    reasons |= set(re.findall(r'_refuse\([^)]*?"(\w+)"', layer))
    reasons |= {m for pair in re.findall(r'code = "(\w+)" if .* else "(\w+)"', layer) for m in pair}
    # compensation's refusals of approval answers: the codes `check_answer` can return
    approvals = importlib.import_module("services.compensation.domain.approvals")
    named = set(re.findall(r"\b[A-Z][A-Z_]+\b", inspect.getsource(approvals.check_answer)))
    reasons |= {value for name in named if isinstance(value := getattr(approvals, name, None), str)}
    assert {"empty", "not_json", "invalid_fields", "unknown_decision", "approver_not_authorised"} <= reasons
    text = contract_docs.CONTRACT_MD.read_text(encoding="utf-8")
    with_examples = {e.reason for e in contract_docs.examples()}
    for reason in reasons:
        assert f"| `{reason}` |" in text, f"{reason} is not in the reasons table of docs/contract.md"
        assert reason in with_examples, f"docs/contract.md has no invalid example rejected as {reason}"


def test_valid_examples_match_the_committed_json_schemas():
    jsonschema = pytest.importorskip("jsonschema")
    for example in contract_docs.examples():
        if example.reason is None:
            kind = example.document["type"]
            schema = json.loads((contract_docs.SCHEMA_DIR / "inbound" / f"{kind}.json").read_text())
            jsonschema.Draft202012Validator(schema).validate(example.document)
    bad = next(e for e in contract_docs.examples() if e.reason == "invalid_fields" and e.topic == COMPLAINTS)
    schema = json.loads((contract_docs.SCHEMA_DIR / "inbound" / "complaint.received.json").read_text())
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad.document)


def test_the_asyncapi_specs_describe_inbound_payloads_with_their_models():
    expected = {COMPLAINTS: "Complaint", CASE_ACTIVITY: "CaseActivity", COMPENSATION_APPROVALS: "ApprovalAnswer",
                "helpdesk.complaints.classified.v1": "ComplaintClassified"}
    seen = set()
    for path in sorted((ROOT / "docs" / "asyncapi").glob("*.yaml")):
        spec = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        schemas = spec["components"]["schemas"]
        assert "EmptyPayload" not in schemas, path.name
        for channel in spec["channels"].values():
            for ref in channel["messages"].values():
                message = spec["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
                name = message["payload"]["$ref"].rsplit("/", 1)[1]
                assert name in schemas
                if channel["address"] in expected and "SubscribeMessage" in ref["$ref"]:
                    assert name == expected[channel["address"]], (path.name, channel["address"])
                    seen.add(channel["address"])
        if "CaseActivity" in schemas:
            assert set(schemas["CaseActivity"]["discriminator"]["mapping"]) == set(ACTIVITY_TYPES)
        if "Complaint" in schemas:
            assert schemas["Complaint"]["properties"]["customer"]["description"].startswith("The customer")
    assert seen == set(expected)
