"""PromQL helpers for the deployment tests: Grafana macros, `promtool` parsing, metric names.

Parsing is promtool's (the real Prometheus parser). Metric names are then read from the expression
with a small tokenizer: selectors by name, plus `{__name__=~"..."}` selectors as patterns.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ruamel.yaml import YAML

PROMTOOL = shutil.which("promtool")

# Grafana replaces these before a query reaches Prometheus; any valid duration parses the same.
GRAFANA_DURATIONS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}
_MACRO = re.compile(r"\$\{?(__[a-z_]+)\}?")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "atan2", "inf", "nan"}
# Series Prometheus makes itself for every target.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
                        "scrape_samples_post_metric_relabeling"}


def expand_grafana_macros(expr: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GRAFANA_DURATIONS:
            raise ValueError(f"unknown Grafana macro ${name} in {expr!r}")
        return GRAFANA_DURATIONS[name]

    return _MACRO.sub(replace, expr)


def metric_names(expr: str) -> set[str]:
    """Names of the metrics an expression selects."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # the exponent or unit of a number, e.g. 1e3
        if text[match.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\')')


def metric_name_patterns(expr: str) -> set[str]:
    """Regular expressions of `{__name__=~"..."}` selectors (an exact `__name__="x"` gives `x`)."""
    patterns = set()
    for operator, quoted in _NAME_MATCHER.findall(expr):
        value = quoted[1:-1]
        patterns.add(value if operator == "=~" else re.escape(value))
    return patterns


def promtool_check_exprs(exprs: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    """Parses every expression with promtool by wrapping each in a recording rule."""
    rules = {"groups": [{"name": "parse", "rules": [
        {"record": f"check:expression_{index}", "expr": expr} for index, expr in enumerate(exprs)
    ]}]}
    path = workdir / "expressions.rules.yml"
    with path.open("w") as out:
        YAML().dump(rules, out)
    return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics text can produce, including metrics with no sample yet
    (labelled metrics show only their # HELP/# TYPE lines until first observed)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            if kind == "counter":
                base = name.removesuffix("_total")
                names.update({base, f"{base}_total", f"{base}_created"})
            elif kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"})
            elif kind == "summary":
                names.update({f"{name}_sum", f"{name}_count", f"{name}_created"})
            elif kind == "info":
                names.add(f"{name}_info")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
