"""How far a layer's result may lie from the oracle's: the derivation, and :func:`tolerance`.

The oracle always runs in float64, on the very values the layer saw (a float32 input is exact in
float64), so the only differences are the layer's own rounding. A gradient ``g`` passes when::

    max |got - expected|  <=  (OPS + K) * (eps(dtype) * (max |expected| + max |dout| * M**degree) + tiny)

- ``eps(dtype)`` is the machine epsilon of the layer's dtype: 2**-52 for float64, 2**-23 for float32.
- ``K`` is the total size of the inputs and the output: no sum in any layer has more terms, and a
  sum of ``K`` terms may lose ``K`` roundings (Higham, *Accuracy and Stability*, §4.2).
- ``OPS = 16`` bounds the roundings of the longest elementwise chain in any layer (the MLP).
- The bound is normwise: the floor ``max |expected|`` keeps cancellation in one entry from failing
  a correct result, and ``max |dout| * M**degree`` (``M`` the largest input magnitude, at least 1,
  ``degree`` the degree of the layer's gradient in its inputs) is the size of the terms summed
  into any entry, so that an exactly cancelling sum (a zero gradient) is compared fairly.
- The output is checked the same way, with ``M**out_degree`` (no ``dout``) as its floor.
- Each rounding may also lose up to the smallest normal number of the dtype: results below it
  may be flushed to zero (XLA on CPU does), which is no error of the layer. So the bound is
  ``(OPS + K) * (eps * scale + smallest_normal)``.

For float64 that is about 1e-13 of the scale: a gradient wrong by one part in a million fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from handlayers.testing.specs import Spec
    from handlayers.testing.strategies import Example

__all__ = ["OPS", "tolerance"]

#: roundings in the longest elementwise chain of any layer (see the module docstring)
OPS = 16


# The comparison


def tolerance(
    spec: Spec, example: Example, dtype: Any, expected: np.ndarray, *, degree: int, output: bool = False
) -> float:
    """The largest error allowed in ``expected``, a gradient or (``output``) the output; see the
    module docstring for the derivation."""
    floats_ = [np.asarray(x) for i, x in enumerate(example.inputs) if i not in spec.labels]
    k = sum(x.size for x in floats_) + int(np.size(example.dout))
    m = max([1.0] + [float(np.max(np.abs(x), initial=0.0)) for x in floats_])
    scale = float(np.max(np.abs(expected), initial=0.0))
    terms = 1.0 if output else float(np.max(np.abs(np.asarray(example.dout)), initial=0.0))
    scale += terms * m**degree
    info = np.finfo(dtype)
    return (OPS + k) * (float(info.eps) * scale + float(info.smallest_normal))
