"""Policy files: YAML validated by pydantic, errors that name file, line and field, hot reload.

An admin edits a policy while the services run. A broken edit must never take a service down or
leave it without a policy: the file is refused with a message saying where it is wrong, and the
last good policy stays in force until the file is fixed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)


class Strict(BaseModel):
    """Base of a policy file's models: a key the model does not know is an error (a misspelt key
    must not be silently ignored), and a loaded policy cannot be changed in place."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names file, line and field."""


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest YAML node on the pydantic error path that exists in the file."""
    line = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        elif isinstance(node, (CommentedMap, CommentedSeq)):
            continue  # pydantic adds tags (union members, validators) that are not YAML keys
        else:
            break
    if line is None and isinstance(node, (CommentedMap, CommentedSeq)) and hasattr(node, "lc"):
        line = node.lc.line + 1
    return line


def _describe(path: str, tree: Any, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        field = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_of(tree, loc)
        where = f"{path}:{line}" if line else path
        lines.append(f"{where}: {field}: {item['msg']}")
    return "\n".join(lines)


def _unexpected(path: str, error: BaseException) -> PolicyError:
    """A PolicyError for a file that made the parser or a validator fail in a way nobody foresaw
    (an OverflowError, a bug): the file is refused like any invalid one; the cause is chained."""
    text = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
    refused = PolicyError(f"{path}: cannot be used: {reason}")
    refused.__cause__ = error
    return refused


def parse_policy(text: str, model: type[P], path: str = "<policy>") -> P:
    """Parses YAML text into `model`, raising PolicyError naming file, line and field.

    Any other exception from the YAML parser or the model's validators (an OverflowError, an int
    of 5,000 digits, a bug) is raised as a PolicyError naming the file and the exception, chained
    to it: whatever a file holds, a caller gets a PolicyError, never a traceback."""
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{path}{line}: not valid YAML: {exc.problem}") from None
    except Exception as exc:
        raise _unexpected(path, exc) from exc
    if tree is None:
        raise PolicyError(f"{path}: the file is empty")
    try:
        # Validators may look beside the file (compensation checks the categories of classification.yaml).
        return model.model_validate(tree, context={"policy_file": Path(path)})
    except ValidationError as exc:
        raise PolicyError(_describe(path, tree, exc)) from None
    except PolicyError:
        raise
    except Exception as exc:
        raise _unexpected(path, exc) from exc


def describe_notes(path: str | os.PathLike[str], notes: Iterable[tuple[tuple[Any, ...], str]]) -> list[str]:
    """Advice about a valid policy (a model's `load_warnings()`: field path and message), written
    like its errors: `file:line: field: message`. The line is left out when the file cannot be read."""
    notes = list(notes)
    if not notes:
        return []
    try:
        tree = YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except (OSError, MarkedYAMLError):
        tree = None
    described = []
    for loc, message in notes:
        line = _line_of(tree, loc) if tree is not None else None
        described.append(f"{path}:{line}: {'.'.join(str(p) for p in loc)}: {message}" if line
                         else f"{path}: {'.'.join(str(p) for p in loc)}: {message}")
    return described


def load_policy(path: str | os.PathLike[str], model: type[P]) -> P:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot be read: {exc.strerror}") from None
    return parse_policy(text, model, str(p))


def content_version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class LoadedPolicy(Generic[P]):
    policy: P
    version: str  # content hash: decisions record which policy made them
    loaded_at: float


class PolicyHolder(Generic[P]):
    """Keeps the last good policy of one file and reloads it when the file changes.

    `current()` is cheap: it looks at the file's mtime at most every `check_every` seconds, so
    an edit applies to the next decision without a restart.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: type[P],
        *,
        check_every: float = 1.0,
        on_reload: Callable[[LoadedPolicy[P]], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.check_every = check_every
        self.on_reload = on_reload
        self.on_refused = on_refused
        self.last_error: str | None = None
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._loaded = self._load()  # the first load must succeed: no policy, no service

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _load(self) -> LoadedPolicy[P]:
        """Reads the file; PolicyError when it cannot be used, whatever `_read` raised (an
        unexpected exception becomes a PolicyError naming the file, chained to it)."""
        stamp = self._file_stamp()
        try:
            policy, version = self._read()
        except PolicyError:
            raise
        except Exception as exc:
            raise _unexpected(str(self.path), exc) from exc
        self._stamp = stamp
        return LoadedPolicy(policy, version, time.time())

    def _read(self) -> tuple[P, str]:
        """The file's content as the model and its version; PolicyError when it cannot be used.
        A holder of another kind of file (a model artifact) overrides this."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{self.path}: cannot be read: {exc.strerror}") from None
        return parse_policy(text, self.model, str(self.path)), content_version(text)

    def current(self) -> LoadedPolicy[P]:
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            self._checked = now
            self.reload_if_changed()
        return self._loaded

    @property
    def policy(self) -> P:
        return self.current().policy

    def reload_if_changed(self) -> bool:
        """Reloads the file when its mtime or size changed; True when a new version is in force.

        A file that cannot be used, for whatever reason, is refused once per edit: logged once
        (the traceback of an unexpected exception at DEBUG), `on_refused` called, `last_error`
        set, and the last good version kept. Never raises for the file's content."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return False
        try:
            loaded = self._load()
        except PolicyError as exc:
            self._stamp = stamp  # refuse this edit once, not on every check
            message = str(exc)
            if message != self.last_error:
                log.error("%s refused, keeping version %s in force:\n%s", self.path.name, self._loaded.version, message)
                if exc.__cause__ is not None:  # an unexpected exception: its traceback for whoever debugs it
                    log.debug("%s: what made it unusable", self.path.name, exc_info=exc.__cause__)
            self.last_error = message
            if self.on_refused:
                self.on_refused(message)
            return False
        changed = loaded.version != self._loaded.version
        self._loaded = loaded
        self.last_error = None
        if changed:
            log.info("%s reloaded: version %s", self.path.name, loaded.version)
            if self.on_reload:
                self.on_reload(loaded)
        return changed
