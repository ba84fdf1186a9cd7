"""Every layer against jax.vjp of its reference: the suite's central property."""

import importlib

import jax
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


def test_quick_compile_keeps_the_options_this_xla_knows(monkeypatch):
    """Every quick option this jax's XLA accepts is kept, one it refuses is left out (not raised),
    and an error that is not about an option is raised."""
    oracle_module = importlib.import_module("handlayers.testing.oracle")
    known = oracle_module.quick_compile()
    assert known.items() <= oracle_module.QUICK_OPTIONS.items()
    assert {"xla_backend_optimization_level", "xla_llvm_disable_expensive_passes"} <= set(known)  # long known

    def jit_without_a_device(*args, **kwargs):
        raise RuntimeError("no device")

    monkeypatch.setitem(oracle_module.QUICK_OPTIONS, "xla_no_such_option", True)
    oracle_module.quick_compile.cache_clear()
    try:
        assert oracle_module.quick_compile() == known
        monkeypatch.setattr(oracle_module.jax, "jit", jit_without_a_device)
        oracle_module.quick_compile.cache_clear()
        with pytest.raises(RuntimeError, match="no device"):
            oracle_module.quick_compile()
    finally:
        monkeypatch.undo()
        oracle_module.quick_compile.cache_clear()
    assert oracle_module.quick_compile() == known
