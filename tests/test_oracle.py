"""Every layer against jax.vjp of its reference: the suite's central property."""

import functools
import importlib
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers.testing import SPECS, Example, check_backends, examples, oracle, tolerance


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_layer_matches_oracle(name, backends, dtype, data):
    """Output and every gradient match jax.vjp of the reference for any inputs and any dout, with
    the input's shape, dtype and library; inputs and dout are left untouched, and a second
    backward gives the same answer (check_example checks all of it). Each drawn example is
    checked on every backend of the run against one computation of the oracle."""
    spec = SPECS[name]
    check_backends(spec.layer, spec, data.draw(examples(spec, dtype)), backends=backends, dtype=dtype)


def test_release_compiled_drops_jax_programs_only_when_the_process_holds_too_many_maps(monkeypatch):
    """Over the given fraction of Linux's memory-map limit every compiled program is dropped (and
    compiled again when next called); under it, or where the counts cannot be read, none is."""
    from handlayers.testing import release_compiled

    oracle_module = importlib.import_module("handlayers.testing.oracle")  # the name is also a function

    add_one = jax.jit(lambda x: x + 1)
    add_one(1.0)
    assert not release_compiled(fraction=1.0)  # a process under the limit can still compile
    assert add_one._cache_size() == 1
    assert release_compiled(fraction=0.0)
    assert add_one._cache_size() == 0
    assert add_one(1.0) == 2.0
    monkeypatch.setattr(oracle_module, "MAPS", "/nonexistent/maps")
    assert not release_compiled(fraction=0.0)
    assert add_one._cache_size() == 1


def test_quick_jit_keeps_the_options_this_xla_knows(monkeypatch):
    """Every option this jax's XLA accepts is kept (the one probe of all of them agrees with a probe
    of each), one it refuses is left out (not raised), none where jax.jit takes no compiler
    options, and an error that is not about an option is raised."""
    oracle_module = importlib.import_module("handlayers.testing.oracle")
    known = oracle_module._known_options
    cheapest = tuple(oracle_module.CHEAPEST.items())
    each = tuple(option for option in cheapest if known((option,)))
    assert {"xla_backend_optimization_level", "xla_llvm_disable_expensive_passes"} <= dict(each).keys()  # long known
    assert known(cheapest) == each
    assert known((*cheapest, ("xla_no_such_option", True))) == each
    assert oracle_module.quick_jit(lambda x: 2 * x)(3.0) == 6.0

    def jit(function, compiler_options=None, error=None):
        if compiler_options is not None:
            raise error
        return jax.jit(function)

    monkeypatch.setattr(oracle_module, "jax", SimpleNamespace(jit=functools.partial(jit, error=TypeError("old jax"))))
    probe = (("xla_cpu_use_fusion_emitters", False),)
    assert known.__wrapped__(probe) == ()
    monkeypatch.setattr(oracle_module, "_known_options", lambda options: ())
    assert oracle_module.quick_jit(lambda x: 2 * x)(3.0) == 6.0  # jax.jit as it is, no options
    monkeypatch.setattr(
        oracle_module, "jax", SimpleNamespace(jit=functools.partial(jit, error=RuntimeError("no device")))
    )
    with pytest.raises(RuntimeError, match="no device"):
        known.__wrapped__(probe)


def test_the_oracle_and_the_measured_tolerance_compile_quickly(monkeypatch):
    """The oracle takes the options that keep its results (every last bit), the measured tolerance's
    program the cheapest; both through quick_jit."""
    oracle_module = importlib.import_module("handlayers.testing.oracle")
    tolerance_module = importlib.import_module("handlayers.testing.tolerance")
    calls = []

    def quick_jit(function, *, cheapest=False):
        calls.append(cheapest)
        return jax.jit(function)

    monkeypatch.setattr(oracle_module, "quick_jit", quick_jit)
    monkeypatch.setattr(tolerance_module, "quick_jit", quick_jit)
    monkeypatch.setattr(oracle_module, "_ORACLES", {})
    monkeypatch.setattr(tolerance_module, "_FUNCTIONS", {})
    spec = SPECS["vector.layer_norm"]  # a measured tolerance
    example = Example((np.ones((2, 3)), np.ones(3), np.zeros(3)), {}, np.ones((2, 3)))
    oracle(spec, example)
    assert calls == [False]
    tolerance(spec, example, np.float64, spec.grads[0])
    assert calls[1:] == [True]


def test_output_shape_is_found_per_shape_and_dtype_of_the_inputs():
    """The output shape is cached per shape *and* dtype of the inputs: a reference whose output
    shape depends on its input's dtype (here one that takes the bytes of each entry, 4 in float32
    and 8 in float64) gets the shape of each dtype, whichever came first."""
    from handlayers.testing import output_shape, spec

    def as_bytes(x):
        return jax.lax.bitcast_convert_type(x, np.uint8)

    declared = spec(as_bytes, "x: n")
    with jax.enable_x64(True):
        assert output_shape(declared, (np.zeros(3, np.float32),), {}) == (3, 4)
        assert output_shape(declared, (np.zeros(3, np.float64),), {}) == (3, 8)
