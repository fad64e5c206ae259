"""`helpdesk classifier eval`: four classifiers side by side on labelled complaints.

- rules: the policy's keywords alone (what intake did before the model);
- model: the learned classifier alone (its top category, whatever its confidence);
- combined: what intake decides (services/intake/domain/category.py, decide_category);
- baseline: TF-IDF of words and characters + logistic regression, trained on the same data in the
  same run, so that the model's figure always has a reference measured alongside it.

Three ways to get a model: the configured one (the artifact intake loads, trained on the policy's
examples and history; the baseline is trained on the same), `--train FILE` (a fresh model and
baseline trained on FILE), or `--cv K` (K-fold cross-validation on the data itself, stratified,
shuffled with seed 0, so a rerun gives the same figures).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_union

from services.intake.classifier.embeddings import StaticEmbeddings
from services.intake.classifier.model import TextClassifier, TrainingParams, train
from services.intake.domain import Prediction, classify_category, decide_category
from services.intake.policy import ClassificationPolicy

CLASSIFIERS = ("rules", "model", "combined", "baseline")


def baseline_pipeline(seed: int = 0) -> Pipeline:
    """TF-IDF word 1–2-grams and character 2–5-grams + logistic regression (C=10): the reference."""
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2),
    )
    return Pipeline([("features", features), ("head", LogisticRegression(C=10, max_iter=3000, random_state=seed))])


@dataclass(frozen=True)
class Scores:
    """One classifier's figures on the evaluated rows (all ratios 0–1)."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # label → precision, recall, f1, support
    confusion: list[list[int]]               # rows: true label, columns: predicted (labels + "(none of these)")

    def summary(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "per_class": self.per_class}


def score(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> Scores:
    """Accuracy and macro-F1 over the data's own labels; a prediction outside them counts as wrong."""
    outside = "(none of these)"
    shown = [p if p in labels else outside for p in predicted]
    precision, recall, f1, support = precision_recall_fscore_support(truth, shown, labels=list(labels), zero_division=0)
    return Scores(
        accuracy=float(accuracy_score(truth, shown)),
        macro_f1=float(f1_score(truth, shown, labels=list(labels), average="macro", zero_division=0)),
        per_class={label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                   for label, p, r, f, s in zip(labels, precision, recall, f1, support)},
        confusion=confusion_matrix(truth, shown, labels=list(labels) + [outside]).tolist(),
    )


@dataclass
class Evaluation:
    """What `helpdesk classifier eval` prints: figures per classifier, over `n` rows."""

    mode: str                      # configured | train | cv
    n: int
    labels: list[str]
    scores: dict[str, Scores]
    scored: str                    # the classifier whose figures are the headline: combined or model
    unknown_labels: list[str]      # labels of the data the policy has no category for
    model_version: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        head = self.scores[self.scored]
        return {
            "accuracy": head.accuracy, "macro_f1": head.macro_f1, "scored": self.scored,
            "baseline_accuracy": self.scores["baseline"].accuracy, "baseline_macro_f1": self.scores["baseline"].macro_f1,
            "n": self.n, "mode": self.mode, "labels": self.labels, "model_version": self.model_version,
            "unknown_labels": self.unknown_labels, "seconds": round(self.seconds, 1), "notes": self.notes,
            "classifiers": {name: s.summary() for name, s in self.scores.items()},
            "confusion": {name: s.confusion for name, s in self.scores.items()},
        }


@dataclass
class _Predictions:
    rules: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    combined: list[str] = field(default_factory=list)
    baseline: list[str] = field(default_factory=list)


def _predict_all(texts: Sequence[str], policy: ClassificationPolicy, model: TextClassifier,
                 baseline: Pipeline, into: _Predictions, rows: Sequence[int], out_index: list[int]) -> None:
    opinions: list[Prediction] = model.predict(list(texts), nearest=0)
    for text, opinion in zip(texts, opinions):
        into.rules.append(classify_category(text, policy)[0])
        into.model.append(opinion.category)
        # What intake decides: without a `model` section that is the keywords alone.
        into.combined.append(decide_category(text, policy, opinion if policy.model is not None else None).category)
    into.baseline += [str(label) for label in baseline.predict(list(texts))]
    out_index += list(rows)


def evaluate(texts: Sequence[str], labels: Sequence[str], policy: ClassificationPolicy, table: StaticEmbeddings, *,
             configured: TextClassifier | None = None, configured_training: tuple[Sequence[str], Sequence[str]] | None = None,
             train_on: tuple[Sequence[str], Sequence[str]] | None = None, folds: int | None = None,
             params: TrainingParams = TrainingParams(), progress: Callable[[str, int, int], None] | None = None) -> Evaluation:
    """Scores the four classifiers on (texts, labels). Exactly one of `configured` (with the data it
    was trained on, for the baseline), `train_on` or `folds` says where the model comes from."""
    if sum(x is not None for x in (configured, train_on, folds)) != 1:
        raise ValueError("give exactly one of configured, train_on and folds")
    started = time.monotonic()
    texts, labels = list(texts), list(labels)
    step = progress or (lambda _what, _done, _total: None)
    found = _Predictions()
    order: list[int] = []
    version = None
    if folds is not None:
        if folds < 2:
            raise ValueError("--cv needs at least 2 folds")
        splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
        y = np.asarray(labels)
        for k, (train_rows, test_rows) in enumerate(splitter.split(np.zeros(len(y)), y)):
            step(f"fold {k + 1} of {folds}", k, folds)
            fold_texts = [texts[i] for i in train_rows]
            fold_labels = [labels[i] for i in train_rows]
            model = train(fold_texts, fold_labels, table, params=params)
            baseline = baseline_pipeline().fit(fold_texts, fold_labels)
            _predict_all([texts[i] for i in test_rows], policy, model, baseline, found, test_rows, order)
        step("done", folds, folds)
    else:
        if train_on is not None:
            step("training", 0, 2)
            model = train(list(train_on[0]), list(train_on[1]), table, params=params)
            baseline_data = train_on
        else:
            assert configured is not None and configured_training is not None
            model, baseline_data = configured, configured_training
            version = configured.version
        step("baseline", 1, 2)
        baseline = baseline_pipeline().fit(list(baseline_data[0]), list(baseline_data[1]))
        _predict_all(texts, policy, model, baseline, found, range(len(texts)), order)
        step("done", 2, 2)
    truth = [labels[i] for i in order]
    label_set = sorted(set(labels))
    scores = {name: score(truth, getattr(found, name), label_set) for name in CLASSIFIERS}
    unknown = sorted(set(labels) - set(policy.category_names))
    notes = []
    if unknown:
        notes.append(f"{len(unknown)} of the data's {len(label_set)} labels are not categories of the policy, so rules "
                     "and combined cannot predict them; the headline figures are the model's")
    return Evaluation(
        mode="cv" if folds else ("train" if train_on is not None else "configured"), n=len(truth), labels=label_set,
        scores=scores, scored="model" if unknown else "combined", unknown_labels=unknown, model_version=version,
        seconds=time.monotonic() - started, notes=notes,
    )
