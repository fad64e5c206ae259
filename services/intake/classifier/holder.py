"""The classifier in force in a running intake: loaded at start, hot-reloaded like a policy.

`helpdesk classifier train` replaces the artifact atomically; the holder notices the new file at
the next policy check and loads it. A missing, corrupt or mismatched artifact is refused with a
message naming the file and the reason, the refusal is logged and counted, `/healthz` lists it
under `policy_errors`, and the last good classifier stays in force.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from services.intake.classifier.embeddings import EmbeddingsError, StaticEmbeddings
from services.intake.classifier.model import ArtifactError, TextClassifier
from shared.policy import LoadedPolicy, PolicyError, PolicyHolder


class ClassifierHolder(PolicyHolder[TextClassifier]):
    """Keeps the last good classifier artifact; raises PolicyError at start if there is none.

    The embedding table is loaded once (about 70 MB in memory); an artifact trained with another
    table is refused."""

    def __init__(self, artifact: Path, table: StaticEmbeddings, *, check_every: float = 1.0,
                 on_reload: Callable[[LoadedPolicy[TextClassifier]], None] | None = None,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.table = table
        super().__init__(artifact, TextClassifier, check_every=check_every, on_reload=on_reload, on_refused=on_refused)

    @classmethod
    def open(cls, artifact: Path, embeddings: Path, **options) -> ClassifierHolder:
        """Loads the table and the artifact; PolicyError naming what is missing or broken."""
        try:
            table = StaticEmbeddings.load(embeddings)
        except EmbeddingsError as exc:
            raise PolicyError(str(exc)) from None
        return cls(artifact, table, **options)

    def _read(self) -> tuple[TextClassifier, str]:
        try:
            model = TextClassifier.load(self.path, self.table)
        except ArtifactError as exc:
            raise PolicyError(str(exc)) from None
        return model, model.version
