"""`helpdesk policy validate`: which kind of policy a file is, and whether it is valid;
`helpdesk policy explain`: what a compensation policy would decide for one complaint.

The kind comes from `--kind`, else from the file name (`sla.yaml`, `sla_staging.yaml`), else from
the file's top-level keys, compared with the fields of each policy model. Every outcome is a
message, never a traceback: a missing file is "file not found: PATH".
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from services.registry import SERVICES
from shared.policy import PolicyError, content_version, describe_notes, parse_policy

POLICY_MODELS = {s.policy: tuple(s.policy_model.split(":")) for s in SERVICES}
"""Policy kind → (module, class) of its model, from services/registry.py."""
KINDS = "|".join(POLICY_MODELS)


def model_of(kind: str) -> type[BaseModel]:
    """The pydantic model of a policy kind (`classification`, `sla`, `compensation`, `followup`).

    Raises KeyError for any other kind."""
    module, name = POLICY_MODELS[kind]
    return getattr(importlib.import_module(module), name)


def kind_from_name(path: Path) -> str | None:
    """The kind a file's name says: `sla.yaml` and `sla_staging.yaml` are sla; None when it says none."""
    stem = path.stem.split("_")[0].split(".")[0].lower()
    return stem if stem in POLICY_MODELS else None


@dataclass(frozen=True)
class KindGuess:
    """What a file's top-level keys say: `kind` when exactly one kind fits best, else None;
    `fits` maps each best-fitting kind to the keys it knows (several kinds: ambiguous, none: no idea)."""

    kind: str | None
    fits: dict[str, list[str]]


def kind_from_content(tree: Any) -> KindGuess:
    """Compares a parsed file's top-level keys with each policy model's fields: the kind that knows
    the most of them wins; a tie is ambiguous (kind None, several `fits`); no known key, no guess."""
    keys = [str(k) for k in tree] if isinstance(tree, dict) else []
    known = {kind: [k for k in keys if k in model_of(kind).model_fields] for kind in POLICY_MODELS}
    best = max((len(v) for v in known.values()), default=0)
    if best == 0:
        return KindGuess(None, {})
    fits = {kind: found for kind, found in known.items() if len(found) == best}
    return KindGuess(next(iter(fits)) if len(fits) == 1 else None, fits)


def _keys(keys: list[str], at_most: int = 4) -> str:
    return ", ".join(keys[:at_most]) + (", …" if len(keys) > at_most else "")


def _fail(message: str) -> None:
    typer.secho(message, err=True, fg=typer.colors.RED)


def validate_file(file: Path, kind: str | None) -> bool:
    """Validates one policy file and prints the outcome; True when it is valid."""
    if not file.exists():
        _fail(f"file not found: {file}")
        return False
    if not file.is_file():
        _fail(f"not a file: {file}")
        return False
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{file}: cannot be read: {getattr(exc, 'strerror', None) or exc}")
        return False
    if kind is None and examples_file(file, text):
        return validate_examples(file)
    kind = kind or kind_from_name(file)
    if kind is None:
        try:
            tree = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark
            _fail(f"{file}{f':{mark.line + 1}' if mark is not None else ''}: not valid YAML: {exc.problem}")
            return False
        except YAMLError as exc:
            _fail(f"{file}: not valid YAML: {exc}")
            return False
        if tree is None:
            _fail(f"{file}: the file is empty")
            return False
        guess = kind_from_content(tree)
        if guess.kind is None and guess.fits:
            options = " or ".join(f"--kind {k}" for k in guess.fits)
            fits = " and ".join(f"{k} ({_keys(v)})" for k, v in guess.fits.items())
            _fail(f"cannot tell which policy {file} is: its top-level keys fit {fits} equally well; pass {options}")
            return False
        if guess.kind is None:
            keys = _keys([str(k) for k in tree]) if isinstance(tree, dict) else "none"
            _fail(f"cannot tell which policy {file} is: its name is none of {', '.join(POLICY_MODELS)} and its "
                  f"top-level keys ({keys}) are none of theirs; pass --kind {KINDS}")
            return False
        kind = guess.kind
        typer.echo(f"{file}: kind {kind}, guessed from its top-level keys ({_keys(guess.fits[kind])}) as the "
                   f"file name does not say (pass --kind {KINDS} to choose)")
    try:
        policy = parse_policy(text, model_of(kind), str(file))
    except PolicyError as exc:
        _fail(str(exc))
        return False
    typer.echo(f"OK: {file} is a valid {kind} policy (version {content_version(text)})")
    advice = policy.load_warnings() if hasattr(policy, "load_warnings") else []
    for note in describe_notes(file, advice):  # valid, but likely not what was meant
        typer.secho(f"warning: {note}", fg=typer.colors.YELLOW)
    return True


def examples_file(file: Path, text: str) -> bool:
    """Whether `file` is the learned classifier's training examples (`examples:` of category →
    texts, e.g. config/classification_examples.yaml) rather than a policy."""
    return file.stem.endswith("_examples") or text.lstrip().startswith("examples:")


def validate_examples(file: Path) -> bool:
    """Checks a training-examples file as `helpdesk classifier train` reads it; True when valid."""
    from services.intake.classifier.training import TrainingDataError, read_examples

    try:
        examples = read_examples(file)
    except TrainingDataError as exc:
        _fail(str(exc))
        return False
    typer.echo(f"{file}: training examples for the learned classifier (not a policy): "
               f"{len(examples.texts)} examples in {len(set(examples.labels))} categories, valid")
    return True


def validate(files: list[Path], kind: str | None) -> None:
    """`helpdesk policy validate`: every file is checked; exit 1 when any is missing or invalid,
    2 for an unknown `--kind`."""
    if kind is not None and kind not in POLICY_MODELS:
        raise typer.BadParameter(f"unknown kind {kind!r}: use one of {', '.join(POLICY_MODELS)}", param_hint="--kind")
    results = [validate_file(file, kind) for file in files]
    if not all(results):
        raise typer.Exit(1)


def _refuse(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


def explain(file: Path, complaint: Path, granted_total: float, already_granted: bool, reopened: bool,
            month_spent: float) -> None:
    """`helpdesk policy explain`: which rule of the compensation policy `file` matches the
    complaint.classified event in the JSON file `complaint`, given the case facts, which do not and
    why, the offers, cost and authority. Any problem with either file is one line on stderr, exit 1."""
    from services.compensation.domain import CaseFacts
    from services.compensation.explain import explain as explain_decision
    from services.compensation.policy import CompensationPolicy

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _refuse(f"{file}: cannot be read: {exc.strerror}") from None
    try:
        policy = parse_policy(text, CompensationPolicy, str(file))
    except PolicyError as exc:
        raise _refuse(str(exc)) from None
    try:
        event = json.loads(complaint.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _refuse(f"{complaint}: cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise _refuse(f"{complaint}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(event, dict):
        raise _refuse(f"{complaint}: expected a JSON object (one complaint.classified event)")
    facts = CaseFacts(granted_total, already_granted, reopened, month_spent)
    try:
        typer.echo(explain_decision(policy, event, version=content_version(text), facts=facts))
    except ValueError as exc:
        raise _refuse(f"{complaint}: {exc}") from None
