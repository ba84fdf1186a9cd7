"""Batched layers: the leading axis is the batch of ``n`` examples.

Dimensions: ``n`` examples, ``d_in`` input features, ``d_out`` output features, ``k`` classes.
The losses are means over the batch. Labels are integer arrays of shape ``(n,)`` with values in
``[0, k)``; they get the gradient ``None``, as do the other inputs that are not floating
(``Embedding``'s indices, ``Dropout``'s mask).

The layers live in modules by family, and this namespace holds them all:

- :mod:`~handlayers.vector.dense`: ``Affine``, ``Linear``, ``MLP``;
- :mod:`~handlayers.vector.activations`: ``ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU``, ``Softmax``;
- :mod:`~handlayers.vector.dropout`: ``Dropout``; :mod:`~handlayers.vector.embedding`: ``Embedding``;
- :mod:`~handlayers.vector.normalization`: ``BatchNorm``, ``LayerNorm``;
- :mod:`~handlayers.vector.conv`: ``Conv2d``, ``MaxPool2d``;
- :mod:`~handlayers.vector.recurrent`: ``RNNStep``, ``RNN``, ``LSTMStep``;
- :mod:`~handlayers.vector.attention`: ``Attention``;
- :mod:`~handlayers.vector.losses`: ``SquaredLoss``, ``HingeLoss``, ``SoftmaxCrossEntropy``,
  ``MeanSquaredError``, ``BinaryCrossEntropyWithLogits``.
"""

from handlayers.vector.activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from handlayers.vector.attention import Attention
from handlayers.vector.conv import Conv2d, MaxPool2d
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
from handlayers.vector.recurrent import RNN, LSTMStep, RNNStep

__all__ = [
    "MLP",
    "RNN",
    "Affine",
    "Attention",
    "BatchNorm",
    "BinaryCrossEntropyWithLogits",
    "Conv2d",
    "Dropout",
    "Embedding",
    "HingeLoss",
    "LSTMStep",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "MeanSquaredError",
    "RNNStep",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "SquaredLoss",
    "Tanh",
]
