"""A real Prometheus server (Debian's package) scraping the demo's services, queried over HTTP."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.processes import free_port

SUMMARY_QUERIES = [
    ("complaints classified", "sum(helpdesk_intake_complaints_classified_total)"),
    ("records rejected", "sum(helpdesk_intake_rejected_events_total)"),
    ("SLA breaches", "sum(helpdesk_sla_breaches_total)"),
    ("first-contact time p90 (s)", "histogram_quantile(0.9, sum by (le) (helpdesk_sla_first_contact_seconds_bucket))"),
    ("compensation granted (value)", "sum(helpdesk_compensation_value_granted_total)"),
    ("follow-ups due", "sum(helpdesk_followup_due_total)"),
    ("customers returned after recovery", "sum(helpdesk_followup_customers_returned_after_recovery_total)"),
]


class PrometheusServer:
    def __init__(self, workdir: Path, targets: dict[str, int]) -> None:
        self.workdir, self.targets = workdir / "prometheus", targets
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("prometheus") is not None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        jobs = "\n".join(
            f"  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']"
            for name, port in self.targets.items()
        )
        config = self.workdir / "prometheus.yml"
        config.write_text(f"global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}\n")
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1)
                return
            except Exception:
                time.sleep(0.3)

    def query(self, expr: str) -> str:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                data = json.load(r)["data"]["result"]
        except Exception as exc:
            return f"(query failed: {type(exc).__name__})"
        if not data:
            return "0"
        value = float(data[0]["value"][1])
        return "n/a" if value != value else f"{value:,.2f}".rstrip("0").rstrip(".")

    def summary(self) -> list[tuple[str, str]]:
        time.sleep(2.5)  # one more scrape after the last events
        return [(label, self.query(expr)) for label, expr in SUMMARY_QUERIES]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
