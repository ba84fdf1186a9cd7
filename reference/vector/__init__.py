"""The batched layers as plain ``jax.numpy`` functions; the leading axis is the batch of ``n``.

By family, as in :mod:`handlayers.vector`: :mod:`~reference.vector.dense`,
:mod:`~reference.vector.activations`, :mod:`~reference.vector.dropout`,
:mod:`~reference.vector.embedding`, :mod:`~reference.vector.normalization`,
:mod:`~reference.vector.conv`, :mod:`~reference.vector.recurrent`, :mod:`~reference.vector.attention`,
:mod:`~reference.vector.losses`.
"""

from reference.vector.activations import leaky_relu, relu, sigmoid, softmax, tanh
from reference.vector.attention import attention
from reference.vector.conv import conv2d, max_pool2d
from reference.vector.dense import affine, linear, mlp
from reference.vector.dropout import dropout
from reference.vector.embedding import embedding
from reference.vector.losses import (
    binary_cross_entropy_with_logits,
    hinge_loss,
    mean_squared_error,
    softmax_cross_entropy,
    squared_loss,
)
from reference.vector.normalization import batch_norm, layer_norm
from reference.vector.recurrent import lstm_step, rnn, rnn_step

__all__ = [
    "affine",
    "attention",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "dropout",
    "embedding",
    "hinge_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "lstm_step",
    "max_pool2d",
    "mean_squared_error",
    "mlp",
    "relu",
    "rnn",
    "rnn_step",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "squared_loss",
    "tanh",
]
