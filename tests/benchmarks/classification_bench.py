"""What the learned classifier costs on the hot path, against rules only, in the same run.

1. In process: CPU per complaint of `classify` with rules only, and with the model's prediction
   for a whole batch (as intake does per fetched batch) and for one complaint at a time (intake's
   one-record fallback); the wall-time p50/p99 of one complaint classified alone.
2. The four services as real processes: the pipeline's rate with the shipped policy (model on)
   against the same policy without its `model` section (rules only), alternating, and intake's
   CPU per complaint in each; then the p99 latency to `complaint.classified` at a low rate.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from services.intake.classifier.embeddings import StaticEmbeddings
from services.intake.classifier.model import TextClassifier
from services.intake.contract import Complaint
from services.intake.domain import classify, complaint_text, decided_without_model
from services.intake.policy import ClassificationPolicy
from shared.policy import load_policy
from shared.settings import Settings
from tests.benchmarks import pipeline_bench as pipeline
from tests.benchmarks.common import ROOT, median, percentile, run_space, say
from tests.support.servers import Servers


@dataclass
class ClassificationSettings:
    complaints: int = 2_000      # in-process and per pipeline repeat
    repeats: int = 5
    batch: int = 500             # intake's CONSUMER_BATCH_SIZE
    single_samples: int = 500
    partitions: int = 3
    low_rate: float = 20.0       # complaints/s for the latency at low load
    low_seconds: float = 10.0


def _policies() -> tuple[ClassificationPolicy, ClassificationPolicy]:
    policy = load_policy(ROOT / "config" / "classification.yaml", ClassificationPolicy)
    return policy, policy.model_copy(update={"model": None})


def in_process(settings: ClassificationSettings) -> dict[str, Any]:
    """CPU milliseconds per complaint for rules only, model batched, model one by one; latency of one."""
    policy, rules_only = _policies()
    s = Settings()
    model = TextClassifier.load(s.classifier_artifact, StaticEmbeddings.load(s.embeddings_dir))
    complaints = [Complaint.model_validate(e) for e in pipeline.complaints(settings.complaints, "cls")]
    texts = [complaint_text(c) for c in complaints]
    model.predict(texts[:10])  # warm caches

    started = time.process_time()
    for c in complaints:
        classify(c, rules_only, 0)
    rules = (time.process_time() - started) * 1000 / len(complaints)

    started = time.process_time()
    for i in range(0, len(complaints), settings.batch):
        chunk = complaints[i:i + settings.batch]
        # As intake does: the model runs for the complaints no CRM category or strong keyword settles.
        wanted = [c for c in chunk if decided_without_model(complaint_text(c), policy, c.crm_category) is None]
        opinions = dict(zip((c.event_id for c in wanted), model.predict([complaint_text(c) for c in wanted])))
        for c in chunk:
            classify(c, policy, 0, opinions.get(c.event_id))
    batched = (time.process_time() - started) * 1000 / len(complaints)
    model_share = sum(decided_without_model(t, policy, c.crm_category) is None for c, t in zip(complaints, texts)) / len(texts)

    # Longer texts in customers' words (the simulator's are one short sentence): cost grows with length.
    held_out = YAML(typ="safe").load((ROOT / "tests" / "intake" / "keyword_free_complaints.yaml").read_text())["complaints"]
    long_texts = [item["text"] for item in held_out] * max(1, settings.complaints // len(held_out))
    started = time.process_time()
    for i in range(0, len(long_texts), settings.batch):
        model.predict(long_texts[i:i + settings.batch])
    long_model = (time.process_time() - started) * 1000 / len(long_texts)

    walls, cpu = [], 0.0
    for c, text in zip(complaints[:settings.single_samples], texts):
        t0, c0 = time.perf_counter(), time.process_time()
        classify(c, policy, 0, model.predict([text])[0])
        walls.append(time.perf_counter() - t0)
        cpu += time.process_time() - c0
    single = cpu * 1000 / len(walls)
    return {"rules_ms": rules, "model_batched_ms": batched, "model_single_ms": single,
            "single_p50_ms": percentile(walls, 50) * 1000, "single_p99_ms": percentile(walls, 99) * 1000,
            "complaints": len(complaints), "batch": settings.batch, "model_version": model.version,
            "long_model_ms": long_model, "model_share": model_share, "long_chars": sum(map(len, long_texts)) / len(long_texts),
            "short_chars": sum(map(len, texts)) / len(texts)}


def _rules_only_config() -> Path:
    """A copy of config/ whose classification policy has no `model` section."""
    folder = Path(tempfile.mkdtemp(prefix="helpdesk-rules-only-"))
    for file in (ROOT / "config").iterdir():
        if file.is_file():
            shutil.copy(file, folder / file.name)
    yaml = YAML(typ="rt")
    tree = yaml.load((folder / "classification.yaml").read_text(encoding="utf-8"))
    del tree["model"]
    with (folder / "classification.yaml").open("w", encoding="utf-8") as out:
        yaml.dump(tree, out)
    return folder


async def services(servers: Servers, settings: ClassificationSettings, logs: Path) -> dict[str, Any]:
    """Pipeline rate with the model and with rules only, alternating phases; intake CPU per complaint."""
    rules_dir = _rules_only_config()
    variants = {"model": {}, "rules": {"HELPDESK_CONFIG_DIR": str(rules_dir)}}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    intake_cpu: dict[str, list[float]] = {name: [] for name in variants}
    latency = None
    try:
        for round_no in range(settings.repeats):
            for name, overrides in variants.items():
                async with run_space(servers, f"c{name[0]}{round_no}") as space:
                    async with pipeline.Phase(space, "services", f"{name}{round_no}", settings.partitions, logs,
                                              env=overrides) as phase:
                        meter = pipeline.CpuMeter(phase.fleet)
                        run = await phase.throughput(settings.complaints)
                        rates[name].append(run.rate)
                        intake_cpu[name].append(meter.used().get("intake", 0.0) * 1000 / settings.complaints)
                        if name == "model" and round_no == settings.repeats - 1:
                            latency = await phase.latency(settings.low_rate, settings.low_seconds)
                say(f"  {name} round {round_no + 1}: {run.rate:,.0f} complaints/s")
    finally:
        shutil.rmtree(rules_dir, ignore_errors=True)
    model_rate, rules_rate = median(rates["model"]), median(rates["rules"])
    return {"rates": rates, "model_rate": model_rate, "rules_rate": rules_rate, "ratio": model_rate / rules_rate,
            "intake_cpu_ms": {k: median(v) for k, v in intake_cpu.items()},
            "low_rate_latency": asdict(latency) if latency else None}
