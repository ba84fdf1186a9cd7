"""Batched layers: the leading axis is the batch of ``n`` examples.

Dimensions: ``n`` examples, ``d_in`` input features, ``d_out`` output features, ``k`` classes.
The losses are means over the batch. Labels are integer arrays of shape ``(n,)`` with values in
``[0, k)``; they get the gradient ``None``.

The layers live in modules by family: :mod:`~handlayers.vector.dense` (``Affine``, ``MLP``),
:mod:`~handlayers.vector.activations` (``ReLU``, ``Sigmoid``, ``Softmax``) and
:mod:`~handlayers.vector.losses` (``SquaredLoss``, ``HingeLoss``, ``SoftmaxCrossEntropy``); this
namespace holds them all.
"""

from handlayers.vector.activations import ReLU, Sigmoid, Softmax
from handlayers.vector.conv import Conv2d, MaxPool2d
from handlayers.vector.dense import MLP, Affine
from handlayers.vector.losses import HingeLoss, SoftmaxCrossEntropy, SquaredLoss

__all__ = ["MLP", "Affine", "HingeLoss", "ReLU", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "SquaredLoss"]
__all__ += ["Conv2d", "MaxPool2d"]  # issue 14: convolution and pooling
