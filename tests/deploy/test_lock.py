"""The builds install exact, hash-checked versions: requirements/runtime.lock (the image) and
requirements/dev.lock (make: tests and benchmarks) pin every dependency pyproject.toml declares, at a
version its range allows, and make and the Dockerfile install from them."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every `name==version` entry of a pip-compile style lock."""
    text = lock.read_text(encoding="utf-8")
    found: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", block)
        if match:
            found[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    return [Requirement(r) for r in wanted]


@pytest.mark.parametrize("lock, extras", [("runtime.lock", ()), ("dev.lock", ("test", "bench"))])
def test_every_declared_dependency_is_pinned_within_its_range_with_hashes(lock, extras):
    pinned = pins(ROOT / "requirements" / lock)
    assert len(pinned) > 20
    for requirement in declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in requirements/{lock}: run `make lock`"
        version, hashes = pinned[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/{lock} pins {name}=={version}, outside pyproject's {requirement.specifier}: run `make lock`")
    assert all(hashes for _version, hashes in pinned.values()), "every pin carries its hashes"


def test_the_runtime_lock_agrees_with_the_dev_lock():
    runtime, dev = pins(ROOT / "requirements" / "runtime.lock"), pins(ROOT / "requirements" / "dev.lock")
    differ = {name: (v, dev.get(name, ("missing",))[0]) for name, (v, _h) in runtime.items() if dev.get(name, ("",))[0] != v}
    assert not differ, f"the image and the tests would run different versions: {differ}; run `make lock`"


def test_make_and_the_image_install_from_the_locks():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install -q --require-hashes -r requirements/dev.lock" in makefile
    assert "--no-deps -e ." in makefile
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements/runtime.lock" in dockerfile
