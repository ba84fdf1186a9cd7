"""Every layer against jax.vjp of its reference: the suite's central property."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers.testing import SPECS, check_backends, examples


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_layer_matches_oracle(name, backends, dtype, data):
    """Output and every gradient match jax.vjp of the reference for any inputs and any dout, with
    the input's shape, dtype and library; inputs and dout are left untouched, and a second
    backward gives the same answer (check_example checks all of it). Each drawn example is
    checked on every backend of the run against one computation of the oracle."""
    spec = SPECS[name]
    check_backends(spec.layer, spec, data.draw(examples(spec, dtype)), backends=backends, dtype=dtype)
