"""The learned category classifier: features, training, prediction and the versioned artifact.

Features, concatenated (a FeatureUnion):
- TF-IDF of words and word pairs, and of character 2–5-grams within words (catches misspellings,
  inflections and compound words in any language);
- the text's static e5 embedding (services/intake/classifier/embeddings.py), which carries meaning
  across synonyms ("the kettle quit" is near "stopped working"), scaled by `embedding_weight`.
A multinomial logistic regression on top gives a probability per category: its top probability is
the confidence the policy's threshold is compared with.

The artifact is one joblib file holding the fitted pipeline, the category names, the examples
kept to explain a prediction, and the `version` (a hash of the training data, parameters and the
embedding table's version: the same inputs train the same version). The embedding table itself is
not inside: it is loaded from its folder and must have the version the artifact was trained with.
Artifacts are code-like: load only files that `helpdesk classifier train` wrote (joblib unpickles).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from services.intake.classifier.embeddings import StaticEmbeddings

FORMAT = 1  # bump when the artifact's layout changes; older artifacts are refused


class ArtifactError(RuntimeError):
    """A classifier artifact that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class TrainingParams:
    """Hyper-parameters, chosen by 5-fold cross-validation on the airline data (docs/classification.md)."""

    c: float = 30.0                 # inverse regularisation of the logistic regression
    embedding_weight: float = 1.0   # scale of the embedding block against the TF-IDF blocks
    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] = (1, 2)
    class_weight: str | None = "balanced"  # small categories count as much as large ones


# Tables loaded in this process, by version. Estimators name their table by version instead of
# holding it: scikit-learn may clone estimators (deep-copying their parameters), and a 70 MB
# table must neither be copied nor pickled into the artifact.
_TABLES: dict[str, StaticEmbeddings] = {}


class EmbeddingFeatures(BaseEstimator, TransformerMixin):
    """The static embedding of each text times `weight`, as a sparse block for the FeatureUnion,
    from the table of version `table_version` (made available in this process by `attach`)."""

    def __init__(self, weight: float = 1.0, table_version: str = "") -> None:
        self.weight = weight
        self.table_version = table_version

    def attach(self, table: StaticEmbeddings) -> None:
        """Makes `table` this estimator's; ArtifactError if it is not the version it was trained with."""
        if self.table_version and table.version != self.table_version:
            raise ArtifactError(f"the model was trained with embedding table {self.table_version}, "
                                f"but table {table.version} is installed: train it again")
        _TABLES[table.version] = table

    def fit(self, texts: Sequence[str], y: Any = None) -> EmbeddingFeatures:
        return self

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        table = _TABLES.get(self.table_version)
        if table is None:
            raise ArtifactError(f"embedding table {self.table_version} is not loaded")
        return sparse.csr_matrix(table.embed(list(texts)) * self.weight)


def build_pipeline(table: StaticEmbeddings, params: TrainingParams, seed: int = 0) -> Pipeline:
    """An unfitted pipeline: TF-IDF words + TF-IDF characters + embeddings → logistic regression."""
    embedding = EmbeddingFeatures(params.embedding_weight, table.version)
    embedding.attach(table)
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=params.word_ngrams, sublinear_tf=True, lowercase=True,
                                  token_pattern=r"(?u)\b\w[\w']*\b", dtype=np.float32)),
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=params.char_ngrams, sublinear_tf=True,
                                  min_df=2, max_features=150_000, dtype=np.float32)),
        ("meaning", embedding),
    ])
    head = LogisticRegression(C=params.c, max_iter=3000, class_weight=params.class_weight, random_state=seed)
    return Pipeline([("features", features), ("head", head)])


def _table_of(pipeline: Pipeline) -> EmbeddingFeatures:
    return dict(pipeline.named_steps["features"].transformer_list)["meaning"]


@dataclass(frozen=True)
class Prediction:
    """The model's best category, its probability (0–1), and the runner-up."""

    category: str
    confidence: float
    runner_up: str | None
    runner_up_confidence: float
    nearest: tuple[str, ...] = ()  # shipped examples of `category` nearest in meaning


@dataclass
class TextClassifier:
    """A fitted classifier and what it was trained on. Build with `train`, store with `save`."""

    pipeline: Pipeline
    version: str
    categories: tuple[str, ...]
    trained_on: dict[str, int]  # examples per category
    sources: tuple[str, ...]
    table_version: str
    params: TrainingParams
    # Admin-written examples (never customers' history) shown as the nearest ones in reasons.
    explain_texts: tuple[str, ...] = ()
    explain_labels: tuple[str, ...] = ()
    trained_at: float = field(default_factory=time.time)
    _explain_vectors: np.ndarray | None = field(default=None, repr=False)

    def attach(self, table: StaticEmbeddings) -> None:
        """Connects the embedding table after loading; ArtifactError if it is not the trained-with one."""
        _table_of(self.pipeline).attach(table)
        self._explain_vectors = table.embed(list(self.explain_texts)) if self.explain_texts else None
        self._table = table

    def predict(self, texts: Sequence[str], nearest: int = 2) -> list[Prediction]:
        """One Prediction per text, computed for the whole list at once (cheaper per text)."""
        if not texts:
            return []
        texts = list(texts)
        # Our own features are finite by construction: skip scikit-learn's input checks (a third of
        # the cost of a small batch). The union's blocks one by one, so the embedding block serves
        # the nearest examples too.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            blocks = {name: step.transform(texts) for name, step in self.pipeline.named_steps["features"].transformer_list}
            head = self.pipeline.named_steps["head"]
            probabilities = head.predict_proba(sparse.hstack(list(blocks.values()), format="csr"))
        labels = head.classes_
        order = np.argsort(-probabilities, axis=1)
        meaning = None
        if nearest and self._explain_vectors is not None:
            meaning = blocks["meaning"] @ self._explain_vectors.T  # scaled cosines: the order is what counts
            meaning = np.asarray(meaning)
        out = []
        for row in range(len(texts)):
            best, second = order[row, 0], (order[row, 1] if len(labels) > 1 else None)
            category = str(labels[best])
            examples: tuple[str, ...] = ()
            if meaning is not None:
                same = [i for i in np.argsort(-meaning[row]) if self.explain_labels[i] == category][:nearest]
                examples = tuple(self.explain_texts[i] for i in same)
            out.append(Prediction(category, float(probabilities[row, best]),
                                  None if second is None else str(labels[second]),
                                  0.0 if second is None else float(probabilities[row, second]), examples))
        return out

    def save(self, path: str | Path) -> Path:
        """Writes the artifact atomically (a reader never sees half a file); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        payload = {"format": FORMAT, **{k: v for k, v in self.__dict__.items() if not k.startswith("_")}}
        try:
            joblib.dump(payload, tmp, compress=3)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # never leave half an artifact behind
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, table: StaticEmbeddings) -> TextClassifier:
        """Reads an artifact written by `save` and attaches `table`; ArtifactError on any problem."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(f"{path}: no classifier artifact: run `helpdesk classifier train`")
        try:
            payload = joblib.load(path)
        except Exception as exc:  # a truncated or foreign file fails in many ways inside unpickling
            raise ArtifactError(f"{path}: not a classifier artifact ({type(exc).__name__}): train it again") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ArtifactError(f"{path}: artifact format {payload.get('format') if isinstance(payload, dict) else '?'}"
                                f" is not {FORMAT}: train it again")
        payload.pop("format")
        try:
            model = cls(**payload)
        except TypeError as exc:
            raise ArtifactError(f"{path}: incomplete artifact ({exc}): train it again") from None
        try:
            model.attach(table)
        except ArtifactError as exc:
            raise ArtifactError(f"{path}: {exc}") from None
        return model


def training_version(texts: Sequence[str], labels: Sequence[str], params: TrainingParams, table_version: str) -> str:
    """Content hash of everything that decides the fitted model."""
    digest = hashlib.sha256(json.dumps([table_version, params.__dict__, FORMAT], sort_keys=True, default=list).encode())
    for text, label in zip(texts, labels):
        digest.update(label.encode("utf-8") + b"\x00" + text.encode("utf-8") + b"\x01")
    return digest.hexdigest()[:12]


def train(texts: Sequence[str], labels: Sequence[str], table: StaticEmbeddings, *,
          params: TrainingParams = TrainingParams(), sources: Sequence[str] = (),
          explain: tuple[Sequence[str], Sequence[str]] = ((), ())) -> TextClassifier:
    """Fits a classifier on labelled texts (at least two categories). Deterministic for equal inputs."""
    if len(set(labels)) < 2:
        raise ValueError("training needs examples of at least two categories")
    pipeline = build_pipeline(table, params)
    pipeline.fit(list(texts), list(labels))
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    model = TextClassifier(
        pipeline=pipeline, version=training_version(texts, labels, params, table.version),
        categories=tuple(str(c) for c in pipeline.classes_), trained_on=dict(sorted(counts.items())),
        sources=tuple(sources), table_version=table.version, params=params,
        explain_texts=tuple(explain[0]), explain_labels=tuple(explain[1]),
    )
    model.attach(table)
    return model
