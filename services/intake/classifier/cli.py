"""`helpdesk classifier …`: build the embedding table, train the classifier, evaluate it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.policy import PolicyError, load_policy
from shared.settings import get_settings

app = typer.Typer(help="The learned complaint classifier: build, train, evaluate.", no_args_is_help=True)
err = Console(stderr=True, soft_wrap=True)  # messages name files: never broken mid-path


def _fail(message: object) -> NoReturn:
    """Prints `message` (a file path, a reason) to stderr as it is, and exits with status 1."""
    err.print(str(message), markup=False, highlight=False, style="red")
    raise typer.Exit(1)


def _policy(path: Path | None):
    from services.intake.policy import ClassificationPolicy

    path = path or get_settings().policy_path("classification.yaml")
    try:
        return path, load_policy(path, ClassificationPolicy)
    except PolicyError as exc:
        _fail(exc)


def _table():
    from services.intake.classifier.embeddings import EmbeddingsError, StaticEmbeddings

    try:
        return StaticEmbeddings.load(get_settings().embeddings_dir)
    except EmbeddingsError as exc:
        _fail(exc)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


@app.command()
def distill(force: bool = typer.Option(False, help="Distill again even if a table is there")) -> None:
    """Build the static embedding table from the packaged e5 model (once; some minutes)."""
    from services.intake.classifier.embeddings import EmbeddingsError, StaticEmbeddings, distill as build

    folder = get_settings().embeddings_dir
    if not force:
        try:
            table = StaticEmbeddings.load(folder)
            typer.echo(f"embedding table {table.version} already in {folder} ({len(table.index):,} words)")
            return
        except EmbeddingsError:
            pass
    with _progress() as bar:
        task = bar.add_task("embedding the vocabulary", total=None)
        version = build(folder, progress=lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(f"embedding table {version} written to {folder}")


@app.command("train")
def train_command(
    policy_file: Path = typer.Option(None, "--policy", help="Classification policy (default: HELPDESK_CONFIG_DIR/classification.yaml)"),
    output: Path = typer.Option(None, "--output", help="Where to write the artifact (default: HELPDESK_MODEL_DIR/classifier.joblib)"),
) -> None:
    """Train on the policy's examples and labelled history; write the versioned artifact intake loads."""
    from services.intake.classifier.training import (
        LabelledTexts, TrainingDataError, coverage_warnings, policy_training_data, train_from_policy,
    )

    path, policy = _policy(policy_file)
    table = _table()
    try:
        examples, history = policy_training_data(path, policy)
        model = train_from_policy(path, policy, table)
    except (TrainingDataError, ValueError) as exc:
        _fail(exc)
    target = output or get_settings().classifier_artifact
    try:
        written = model.save(target)
    except OSError as exc:
        _fail(f"{target}: cannot write the artifact: {exc.strerror or exc}")
    counts = ", ".join(f"{k} {v}" for k, v in model.trained_on.items())
    typer.echo(f"classifier {model.version} written to {written}\n  trained on {sum(model.trained_on.values())} "
               f"complaints from {'; '.join(model.sources)}\n  per category: {counts}")
    both = LabelledTexts()
    both.extend(examples)
    both.extend(history)
    for warning in coverage_warnings(both, policy):
        err.print(f"warning: {warning}", markup=False, style="yellow")


def _read_labelled(file: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    from services.intake.classifier.training import TrainingDataError, read_history
    from services.intake.policy import HistoryFile

    try:
        data = read_history(file, HistoryFile(file=str(file), text_column=text_column, label_column=label_column))
    except (TrainingDataError, FileNotFoundError) as exc:
        _fail(exc)
    if not data.texts:
        _fail(f"{file}: no rows with both a text and a label in columns {text_column!r} and {label_column!r}")
    return data.texts, data.labels


@app.command("eval")
def eval_command(
    data: Path = typer.Option(..., "--data", help="CSV of labelled complaints to evaluate on"),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("category", "--label-column"),
    train_file: Path = typer.Option(None, "--train", help="Train a fresh model and baseline on this CSV (same columns)"),
    cv: int = typer.Option(None, "--cv", help="K-fold cross-validation on --data instead"),
    policy_file: Path = typer.Option(None, "--policy", help="Classification policy (default: the configured one)"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables"),
) -> None:
    """Accuracy, macro-F1, per-class precision and recall and confusion matrices: rules, model,
    combined and a TF-IDF baseline side by side. Neither --train nor --cv: the configured classifier."""
    from services.intake.classifier.evaluate import evaluate
    from services.intake.classifier.model import ArtifactError, TextClassifier
    from services.intake.classifier.training import TrainingDataError, policy_training_data

    if train_file is not None and cv is not None:
        raise typer.BadParameter("give --train or --cv, not both")
    if cv is not None and cv < 2:
        raise typer.BadParameter("--cv needs at least 2 folds", param_hint="--cv")
    path, policy = _policy(policy_file)
    texts, labels = _read_labelled(data, text_column, label_column)
    table = _table()
    options = {}
    if cv is not None:
        options["folds"] = cv
    elif train_file is not None:
        options["train_on"] = _read_labelled(train_file, text_column, label_column)
    else:
        try:
            options["configured"] = TextClassifier.load(get_settings().classifier_artifact, table)
            examples, history = policy_training_data(path, policy)
        except (ArtifactError, TrainingDataError) as exc:
            _fail(exc)
        options["configured_training"] = (examples.texts + history.texts, examples.labels + history.labels)
    try:
        with _progress() as bar:
            task = bar.add_task("evaluating", total=None)
            result = evaluate(texts, labels, policy, table, **options,
                              progress=lambda what, done, total: bar.update(task, description=what, completed=done, total=total))
    except ValueError as exc:  # too few rows of a category for K folds, a single category, …
        _fail(f"cannot evaluate: {exc}")
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    else:
        print_evaluation(result)


def print_evaluation(result) -> None:
    """The evaluation as tables for people."""
    from services.intake.classifier.evaluate import CLASSIFIERS

    out = Console()
    summary = Table(title=f"{result.n} complaints, {result.mode} ({result.seconds:.0f} s)")
    summary.add_column("classifier")
    summary.add_column("accuracy", justify="right")
    summary.add_column("macro-F1", justify="right")
    for name in CLASSIFIERS:
        s = result.scores[name]
        mark = " ←" if name == result.scored else ""
        summary.add_row(name + mark, f"{s.accuracy:.1%}", f"{s.macro_f1:.3f}")
    out.print(summary)
    per_class = Table(title="precision / recall per category")
    per_class.add_column("category", overflow="fold")
    per_class.add_column("n", justify="right")
    for name in CLASSIFIERS:
        per_class.add_column(name, justify="right")
    for label in result.labels:
        cells = [f"{result.scores[n].per_class[label]['precision']:.2f} / {result.scores[n].per_class[label]['recall']:.2f}"
                 for n in CLASSIFIERS]
        per_class.add_row(label, str(result.scores[CLASSIFIERS[0]].per_class[label]["support"]), *cells)
    out.print(per_class)
    for name in CLASSIFIERS:
        matrix = Table(title=f"confusion matrix, {name} (rows: true, columns: predicted)")
        matrix.add_column("", overflow="fold")
        heads = result.labels + ["(none of these)"]
        for i, _ in enumerate(heads):
            matrix.add_column(str(i + 1), justify="right")
        for i, (label, row) in enumerate(zip(heads, result.scores[name].confusion)):
            matrix.add_row(f"{i + 1} {label}", *[str(v) if v else "·" for v in row])
        out.print(matrix)
    for note in result.notes:
        out.print(f"note: {note}")
