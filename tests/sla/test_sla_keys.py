"""Keys on the case-activity and the internal classified topic, through the real broker: sla and
followup both refuse records keyed by another case."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shared.events import CASE_ACTIVITY, CLASSIFIED, REJECTED, SLA
from tests.sla.test_sla_service import activity, classified, new_case, of_case, wait_sla

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_activity_and_classifications_keyed_by_another_case_are_rejected_by_each_reader(ns_fast):
    shutil.copy(ROOT / "config" / "followup.yaml", ns_fast.config_dir / "followup.yaml")
    ns_fast.service("sla")
    ns_fast.service("followup")
    case, stray, other = new_case(), new_case(), new_case()
    await ns_fast.kafka.publish(CLASSIFIED, classified(stray), key=other)
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(stray, "case.contacted"), key=other)
    await ns_fast.kafka.publish(CLASSIFIED, classified(case))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted"))

    rejected = await ns_fast.kafka.wait_for(REJECTED, lambda rs: len(rs) >= 4)
    seen = sorted((r["rejected_by"], r["topic"], r["reason"], r["case_id"], r["key"]) for r in rejected)
    assert seen == sorted((by, topic, "key_mismatch", stray, other)
                          for by in ("sla", "followup") for topic in (CLASSIFIED, CASE_ACTIVITY))
    await wait_sla(ns_fast, lambda rs: of_case(rs, case, "sla.met", "first_contact"))
    assert of_case(await ns_fast.kafka.read_all(SLA), stray) == [], "the stray case started no clock"
