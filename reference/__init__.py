"""The layers of handlayers as plain ``jax.numpy`` functions, so that ``jax.vjp`` is the oracle.

Each function takes the same arguments, in the same order, as the matching layer's ``forward``
and uses the same convention at every kink (see each docstring), so that its autodiff gradient is
the gradient the hand-written ``backward`` must return.
"""
