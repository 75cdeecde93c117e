"""Small helpers for messages in plain English."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 epoch`, `4 epochs`, `0 epochs`; `nouns` for an irregular plural (`batches`)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
