"""handlayers: neural-network layers with hand-written backward passes, checked against autodiff.

``handlayers.scalar`` holds the lab's one-number layers (elementwise, broadcasting like numpy),
``handlayers.vector`` the batched layers. Every layer computes in the array library of its
inputs: numpy, or ``jax.numpy`` on the inputs' device.
"""

from handlayers import scalar, vector
from handlayers._layer import Layer

__all__ = ["Layer", "scalar", "vector"]
__version__ = "0.1.0"
