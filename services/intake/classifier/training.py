"""Where the classifier's labelled examples come from, and training it from the policy.

Two sources, both named in the policy's `model` section (config/classification.yaml):
- `examples`: a YAML file of complaints per category, written by admins the way customers write
  (config/classification_examples.yaml ships at least ten per shipped category);
- `history`: CSV files of the organisation's own labelled complaints (text and label columns).
Every label must be one of the policy's categories (after `normalise_label`): a label the policy
does not know is refused, naming the file, the line and the label, so that nothing in code, and
nothing the model predicts, names a category the admins did not define.
"""
from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from services.intake.classifier.embeddings import StaticEmbeddings
from services.intake.classifier.model import TextClassifier, TrainingParams, train
from services.intake.policy import ClassificationPolicy, HistoryFile

csv.field_size_limit(1 << 24)


class TrainingDataError(ValueError):
    """Examples or history that cannot be trained on; the message names file, line and problem."""


def normalise_label(label: str) -> str:
    """A CSV label as a category name: "Late Flight" → late_flight, "Can't Tell" → cant_tell,
    "Verspätung" → verspatung (accents dropped); a label with no Latin letters gives ""."""
    ascii_only = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "_", ascii_only.strip().lower().replace("'", "")).strip("_")


@dataclass
class LabelledTexts:
    """Texts and their category names, in file order, and where each source's rows came from."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # "file (n rows)"
    origins: dict[str, str] = field(default_factory=dict)  # label → where it was first written

    def extend(self, other: LabelledTexts) -> None:
        self.texts += other.texts
        self.labels += other.labels
        self.sources += other.sources
        self.origins = {**other.origins, **self.origins}


def _resolve(base: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base / path


def read_examples(path: Path) -> LabelledTexts:
    """The examples file: `examples: {category: [text, ...]}`."""
    try:
        tree = YAML(typ="rt").load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrainingDataError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except YAMLError as exc:
        raise TrainingDataError(f"{path}: not valid YAML: {exc}") from None
    examples = tree.get("examples") if isinstance(tree, dict) else None
    if not isinstance(examples, dict):
        raise TrainingDataError(f"{path}: expected a mapping `examples:` of category → list of complaints")
    out = LabelledTexts(sources=[f"{path.name} ({sum(len(v or []) for v in examples.values())} examples)"])
    for category, texts in examples.items():
        if not isinstance(texts, list):
            raise TrainingDataError(f"{path}:{examples.lc.key(category)[0] + 1}: examples.{category}: expected a list of complaints")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise TrainingDataError(f"{path}:{texts.lc.item(i)[0] + 1}: examples.{category}[{i}]: expected a non-empty text")
            out.texts.append(text)
            out.labels.append(str(category))
    return out


def read_history(path: Path, spec: HistoryFile) -> LabelledTexts:
    """One labelled CSV (UTF-8, with or without the byte-order mark spreadsheets write); rows with
    an empty text or label are skipped, labels normalised. `origins` keeps, per normalised label,
    the label as written and the file line where it first appears, for error messages."""
    out = LabelledTexts()
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise TrainingDataError(f"{path}: empty file: expected a header row with "
                                        f"{spec.text_column!r} and {spec.label_column!r}")
            missing = [c for c in (spec.text_column, spec.label_column) if c not in reader.fieldnames]
            if missing:
                raise TrainingDataError(f"{path}: no column {', '.join(repr(c) for c in missing)}; "
                                        f"it has {', '.join(repr(c) for c in reader.fieldnames)}")
            for row in reader:
                text, label = (row.get(spec.text_column) or "").strip(), (row.get(spec.label_column) or "").strip()
                if text and label:
                    out.texts.append(text)
                    name = normalise_label(label)
                    out.labels.append(name)
                    out.origins.setdefault(name, f"{label!r} on line {reader.line_num}")
    except OSError as exc:
        raise TrainingDataError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TrainingDataError(f"{path}: not UTF-8 text (line {reader.line_num + 1}, byte {exc.start} of "
                                "the part read): save it as CSV UTF-8") from None
    except csv.Error as exc:
        raise TrainingDataError(f"{path}:{reader.line_num}: not a CSV file: {exc}") from None
    out.sources = [f"{path.name} ({len(out.texts)} rows)"]
    return out


CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check_labels(data: LabelledTexts, policy: ClassificationPolicy, where: str) -> None:
    """Refuses labels that are not categories of the policy, saying where each was written."""
    known = set(policy.category_names)
    unknown = sorted(set(data.labels) - known)
    if not unknown:
        return
    described = [f"{name or '(nothing usable)'} ({data.origins[name]})" if name in data.origins else name
                 for name in unknown]
    unusable = [name for name in unknown if not CATEGORY_NAME.match(name)]
    advice = ("add them under `categories:` in classification.yaml (keywords are optional)" if not unusable else
              "category names are lower-case ASCII letters, digits and _, starting with a letter: relabel "
              "those rows with such names and add them under `categories:`")
    raise TrainingDataError(f"{where}: labels that are not categories of the policy: {', '.join(described)}; {advice}")


def coverage_warnings(data: LabelledTexts, policy: ClassificationPolicy, minimum: int = 10) -> list[str]:
    """Categories of the policy the model will know too little of: none or fewer than `minimum`
    examples (the shipped file has 45 each; with 3 a category was mostly missed in our tests)."""
    counts = {name: data.labels.count(name) for name in policy.category_names}
    warnings = [f"{name}: no examples: the model can never choose it" for name, n in counts.items() if n == 0]
    warnings += [f"{name}: only {n} examples (give at least {minimum})" for name, n in counts.items() if 0 < n < minimum]
    return warnings


def policy_training_data(policy_path: Path, policy: ClassificationPolicy) -> tuple[LabelledTexts, LabelledTexts]:
    """(examples, history) as the policy names them; TrainingDataError on anything unusable."""
    if policy.model is None:
        raise TrainingDataError(f"{policy_path}: the policy has no `model:` section, so intake uses keywords only")
    base = policy_path.parent
    examples = LabelledTexts()
    if policy.model.examples:
        path = _resolve(base, policy.model.examples)
        examples = read_examples(path)
        check_labels(examples, policy, str(path))
    history = LabelledTexts()
    for spec in policy.model.history:
        path = _resolve(base, spec.file)
        one = read_history(path, spec)
        check_labels(one, policy, str(path))
        history.extend(one)
    if len(set(examples.labels + history.labels)) < 2:
        raise TrainingDataError(f"{policy_path}: the model needs labelled examples of at least two categories")
    return examples, history


def train_from_policy(policy_path: Path, policy: ClassificationPolicy, table: StaticEmbeddings,
                      params: TrainingParams = TrainingParams()) -> TextClassifier:
    """Trains on the policy's examples and history; the admin-written examples explain predictions."""
    examples, history = policy_training_data(policy_path, policy)
    data = LabelledTexts()
    data.extend(examples)
    data.extend(history)
    return train(data.texts, data.labels, table, params=params, sources=data.sources,
                 explain=(examples.texts, examples.labels))
