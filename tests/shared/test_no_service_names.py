"""shared/ names no service: what it needs of one (port, schema, topics) the service passes in, and
the list of services lives in services/registry.py. Checked on the code, not the prose: an import of
`services`, or a string that names a service (a dict key, a schema, a table, a module path). The
contract's topic names (`helpdesk.sla.v1`) are the contract's, not a service's, and are allowed."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from services.registry import NAMES

ROOT = Path(__file__).resolve().parents[2]
SHARED = sorted((ROOT / "shared").rglob("*.py"))
SERVICE_WORD = re.compile(rf"(?<![\w-])({'|'.join(NAMES)})(?![\w-])|\bservices[./]\w")
CONTRACT_TOPIC = re.compile(r"helpdesk\.[a-z.-]+\.v\d+")


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, nodes) and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)}


def service_names(source: str) -> list[str]:
    """Where `source` names a service in code: `line: what`, empty when it names none."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "services"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "services":
            found.append(f"{node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if SERVICE_WORD.search(CONTRACT_TOPIC.sub("", node.value)):
                found.append(f"{node.lineno}: {node.value[:60]!r}")
    return found


@pytest.mark.parametrize("path", SHARED, ids=[str(p.relative_to(ROOT)) for p in SHARED])
def test_shared_code_names_no_service(path):
    found = service_names(path.read_text(encoding="utf-8"))
    assert not found, f"{path.relative_to(ROOT)} names a service (pass it in from the service's app.py): {found}"


@pytest.mark.parametrize("source", [
    'PORTS = {"intake": 9101}',
    'SCHEMAS = ("sla",)',
    'TABLE = "compensation.decisions"',
    'import services.followup.store',
    'from services.registry import NAMES',
    'MODULE = "services.sla.app"',
])
def test_the_check_sees_a_service_named_in_code(source):
    assert service_names(source)


@pytest.mark.parametrize("source", [
    'SLA = "helpdesk.sla.v1"',
    'TOPIC = "helpdesk.compensation-approvals.v1"',
    'def f():\n    """Read by followup."""\n',
    'x = 1  # intake only',
    'KIND = "followup_due_at"',
    'LOGGER = f"services.{name}"',  # the package of whichever service passed its name in
])
def test_the_check_allows_contract_topics_and_prose(source):
    assert not service_names(source)
