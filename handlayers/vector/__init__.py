"""Batched layers: the leading axis is the batch of ``n`` examples.

Dimensions: ``n`` examples, ``d_in`` input features, ``d_out`` output features, ``k`` classes.
The losses are means over the batch. Labels are integer arrays of shape ``(n,)`` with values in
``[0, k)``; they get the gradient ``None``, as do the other inputs that are not floating
(``Embedding``'s indices, ``Dropout``'s mask).

The layers live in modules by family: :mod:`~handlayers.vector.dense` (``Affine``, ``Linear``,
``MLP``), :mod:`~handlayers.vector.activations` (``ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU``,
``Softmax``), :mod:`~handlayers.vector.dropout` (``Dropout``), :mod:`~handlayers.vector.embedding`
(``Embedding``), :mod:`~handlayers.vector.normalization` (``BatchNorm``, ``LayerNorm``)
and :mod:`~handlayers.vector.losses` (``SquaredLoss``, ``HingeLoss``,
``SoftmaxCrossEntropy``, ``MeanSquaredError``, ``BinaryCrossEntropyWithLogits``); this namespace
holds them all.
"""

from handlayers.vector.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from handlayers.vector.dense import MLP, Affine, Linear
from handlayers.vector.dropout import Dropout
from handlayers.vector.embedding import Embedding
from handlayers.vector.losses import (
    BinaryCrossEntropyWithLogits,
    HingeLoss,
    MeanSquaredError,
    SoftmaxCrossEntropy,
    SquaredLoss,
)
from handlayers.vector.normalization import BatchNorm, LayerNorm

__all__ = [
    "MLP",
    "Affine",
    "BatchNorm",
    "BinaryCrossEntropyWithLogits",
    "Dropout",
    "Embedding",
    "HingeLoss",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MeanSquaredError",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SquaredLoss",
    "Tanh",
]
