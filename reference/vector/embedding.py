"""Embedding: ``embedding``, a lookup of rows by integer indices."""

__all__ = ["embedding"]


def embedding(idx, W):
    """``W[idx]`` for integer ``idx`` of any shape with values in ``[0, V)`` and ``W`` (V, d).

    Autodiff of the lookup scatters ``dout`` back into the rows it read, adding up repeats.
    """
    return W[idx]
