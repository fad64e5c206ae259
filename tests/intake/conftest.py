"""The shipped classifier, as intake loads it: the real model, never a mock (`make model` builds it)."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.classifier.embeddings import EmbeddingsError, StaticEmbeddings
from services.intake.classifier.model import ArtifactError, TextClassifier
from services.intake.policy import ClassificationPolicy
from shared.policy import load_policy
from shared.settings import Settings

CONFIG = Path(__file__).resolve().parents[2] / "config" / "classification.yaml"


@pytest.fixture(scope="session")
def shipped_policy() -> ClassificationPolicy:
    return load_policy(CONFIG, ClassificationPolicy)


@pytest.fixture(scope="session")
def embedding_table() -> StaticEmbeddings:
    try:
        return StaticEmbeddings.load(Settings().embeddings_dir)
    except EmbeddingsError as exc:
        pytest.fail(f"{exc} (or `make model`)")


@pytest.fixture(scope="session")
def shipped_classifier(embedding_table: StaticEmbeddings) -> TextClassifier:
    try:
        return TextClassifier.load(Settings().classifier_artifact, embedding_table)
    except ArtifactError as exc:
        pytest.fail(f"{exc} (or `make model`)")
