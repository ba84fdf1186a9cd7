"""The batched layers as plain ``jax.numpy`` functions; the leading axis is the batch of ``n``.

By family, as in :mod:`handlayers.vector`: :mod:`~reference.vector.dense`,
:mod:`~reference.vector.activations`, :mod:`~reference.vector.losses`.
"""

from reference.vector.activations import relu, sigmoid, softmax
from reference.vector.conv import conv2d, max_pool2d
from reference.vector.dense import affine, mlp
from reference.vector.losses import hinge_loss, softmax_cross_entropy, squared_loss

__all__ = ["affine", "hinge_loss", "mlp", "relu", "sigmoid", "softmax", "softmax_cross_entropy", "squared_loss"]
__all__ += ["conv2d", "max_pool2d"]  # issue 14: convolution and pooling
