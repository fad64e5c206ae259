"""docs/asyncapi/: the committed specs are what FastStream's generator makes from the code now."""
from __future__ import annotations

from deploy import asyncapi
from tests.deploy.files import ROOT


def test_every_service_with_an_app_has_a_committed_asyncapi_spec():
    for name in asyncapi.services_with_app():
        assert (ROOT / "docs" / "asyncapi" / f"{name}.yaml").is_file(), f"no docs/asyncapi/{name}.yaml"


def test_committed_asyncapi_specs_are_not_stale():
    specs = asyncapi.generate_all()
    assert set(specs) == set(asyncapi.services_with_app())
    outdated = asyncapi.stale(specs)
    assert not outdated, f"stale AsyncAPI specs {outdated}: run .venv/bin/python deploy/asyncapi.py"


def test_each_spec_documents_the_contract_topics_the_service_consumes():
    from ruamel.yaml import YAML

    consumed = {
        "intake": {"helpdesk.complaints.v1"},
        "sla": {"helpdesk.complaints.classified.v1", "helpdesk.case-activity.v1"},
        "compensation": {"helpdesk.complaints.classified.v1", "helpdesk.compensation-approvals.v1"},
        "followup": {"helpdesk.complaints.classified.v1", "helpdesk.case-activity.v1"},
    }
    for name in asyncapi.services_with_app():
        spec = YAML(typ="safe").load((ROOT / "docs" / "asyncapi" / f"{name}.yaml").read_text())
        addresses = {channel["address"] for channel in spec["channels"].values()}
        assert consumed[name] <= addresses, f"{name}: {sorted(addresses)}"
