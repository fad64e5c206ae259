"""Every service has the same files in the same roles (README, "How a service reads"), and the
layers import only downwards: domain/ touches no I/O, handlers hold no SQL and no rules, the
service layer reaches the database only through its store."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from services import registry

ROOT = Path(__file__).resolve().parents[1]
SERVICES = [s.name for s in registry.SERVICES]
FILES = ("contract.py", "handlers.py", "service.py", "store.py", "policy.py", "metrics.py", "app.py")
IO_MODULES = ("asyncpg", "aiokafka", "faststream", "prometheus_client", "httpx", "shared.db", "shared.batch",
              "shared.inbound", "shared.outbox", "shared.service", "shared.timers", "shared.kafka")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute; relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _reaches(imports: set[str], modules: tuple[str, ...]) -> list[str]:
    return sorted(i for i in imports if any(i == m or i.startswith(m + ".") for m in modules))


def test_the_registry_lists_four_services() -> None:
    assert SERVICES == ["intake", "sla", "compensation", "followup"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_files(service: str) -> None:
    folder = ROOT / "services" / service
    missing = [name for name in FILES if not (folder / name).is_file()]
    assert not missing, f"services/{service} lacks {missing}"
    assert (folder / "domain" / "__init__.py").is_file(), f"services/{service}/domain/ is not a package"


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_does_no_io(service: str) -> None:
    own = tuple(f"services.{service}.{layer}" for layer in ("handlers", "service", "store", "app", "metrics",
                                                           "contract"))
    for path in sorted((ROOT / "services" / service / "domain").rglob("*.py")):
        bad = _reaches(_imports(path), IO_MODULES + own)
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: domain/ holds pure rules only"


@pytest.mark.parametrize("service", SERVICES)
def test_handlers_are_subscribers_only(service: str) -> None:
    path = ROOT / "services" / service / "handlers.py"
    bad = _reaches(_imports(path), (f"services.{service}.store", f"services.{service}.domain", "asyncpg"))
    assert not bad, f"services/{service}/handlers.py imports {bad}: rules and SQL belong to domain/ and store.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert not classes, f"services/{service}/handlers.py defines {classes}: the service layer is service.py"


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_stores_run_sql(service: str) -> None:
    """service.py and any other module of the service (followup's recovery.py, compensation's
    explain.py, ...) reach the database through a store (`store.py`, `*_store.py`)."""
    for path in sorted((ROOT / "services" / service).rglob("*.py")):
        if path.name == "store.py" or path.name.endswith("_store.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # a SQL statement written outside a store: conn.execute / fetch / fetchrow / fetchval
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                    "execute", "executemany", "fetch", "fetchrow", "fetchval", "copy_records_to_table"):
                pytest.fail(f"{path.relative_to(ROOT)} line {node.lineno} runs SQL itself; that is a store's job")


@pytest.mark.parametrize("service", SERVICES)
def test_the_contract_says_what_comes_in_and_what_goes_out(service: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "services" / service / "contract.py").read_text(encoding="utf-8"))) or ""
    assert "In:" in doc and "Out:" in doc, f"services/{service}/contract.py's docstring lacks its In:/Out: sections"
    assert "docs/contract.md" in doc
