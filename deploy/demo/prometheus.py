"""A real Prometheus server (Debian's package) scraping the demo's services, queried over HTTP."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from deploy.demo.summary import Figures, Sample
from tests.support.processes import free_port

# Every helpdesk series in one instant query, so all figures are of the same evaluation time.
ALL_SERIES = '{__name__=~"helpdesk_.+"}'
FIRST_CONTACT_P90 = "histogram_quantile(0.9, sum by (le) (helpdesk_sla_first_contact_seconds_bucket))"


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

    def query(self, expr: str) -> list[dict]:
        """The result vector of an instant query (`[{"metric": {...}, "value": [t, "1"]}, ...]`).
        Raises URLError/OSError when Prometheus does not answer."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)["data"]["result"]

    def figures(self) -> Figures:
        """The demo summary's figures from what Prometheus scraped last (every second)."""
        samples = [Sample(row["metric"].get("__name__", ""), row["metric"], float(row["value"][1]))
                   for row in self.query(ALL_SERIES)]
        p90 = self.query(FIRST_CONTACT_P90)
        value = float(p90[0]["value"][1]) if p90 else None
        return Figures.from_samples(samples, None if value is None or value != value else value)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
