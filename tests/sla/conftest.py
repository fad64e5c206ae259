"""Fixtures of the sla integration tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FAST_POLICY = Path(__file__).with_name("sla_fast.yaml")  # seconds instead of hours


@pytest.fixture
def ns_fast(ns, tmp_path: Path):
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(FAST_POLICY, config / "sla.yaml")
    ns.config_dir = config
    return ns
