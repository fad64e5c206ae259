"""Stand-ins for the parts of a service a handler test does not exercise."""
from __future__ import annotations


class PlainTopics:
    """In place of ServiceRuntime for handlers that only name their output topics (no prefix)."""

    @staticmethod
    def topic(name: str) -> str:
        return name
