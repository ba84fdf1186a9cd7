"""Dropout: ``dropout`` with the mask as an input."""

__all__ = ["dropout"]


def dropout(A, keep, p=0.5):
    """``A * keep / (1 - p)`` for a boolean ``keep`` of ``A``'s shape (inverted dropout)."""
    return A * keep / (1 - p)
