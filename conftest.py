"""Test configuration: jax in float64, the --backend option, and the Hypothesis profiles."""

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))

# Under pytest-xdist every worker gets a core of its own: one BLAS thread each, set before numpy
# loads its BLAS (two threads per worker on a busy machine ran a matmul 1.5x slower than one).
if os.environ.get("PYTEST_XDIST_WORKER"):
    for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(threads, "1")

# No persistent compilation cache (jax's JAX_COMPILATION_CACHE_DIR) for the suite: each worker
# compiles a shape once and keeps it in memory, until it holds too many programs (see the
# release_compiled fixture below); on disk it saved a quarter of a second run, for some 800 MB
# (docs/testing.md).

# The suite needs jax whatever the backend: jax.vjp of the reference is the oracle.
# jax computes in float32 unless x64 is on, and it must be on before any jax array exists:
# the oracle runs in float64 and the float64 layers are checked tightly.
import jax  # noqa: E402 (after the environment above, which jax and numpy read as they load)
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)
# On a GPU, float32 matmuls default to TF32 (10 mantissa bits). The float32 tolerances are
# derived for true float32, so the tests ask for full precision (no effect on the CPU).
jax.config.update("jax_default_matmul_precision", "highest")
try:
    JAX_DEVICES = jax.devices()
    JAX_UNAVAILABLE = None
# JAX_PLATFORMS=cuda on a machine without a GPU: jax raises RuntimeError, or AssertionError
# when no plugin for that platform is installed at all
except (RuntimeError, AssertionError) as error:
    JAX_DEVICES = []
    platforms = os.environ.get("JAX_PLATFORMS")
    JAX_UNAVAILABLE = f"jax has no device for JAX_PLATFORMS={platforms!r} ({type(error).__name__}: {error})"

# the repository root on the path, so that `python -m pytest` runs from a checkout without an install
sys.path.insert(0, ROOT)

BACKENDS = ("numpy", "jax")
DTYPES = ("float64", "float32")

# deadline=None: the first example of each new shape compiles under jax, which takes far longer
# than a later one; a deadline would flag compilation, not slowness of the layers.
# too_slow: drawing an example includes jax.eval_shape of the reference, which is slow on the
# first call of each reference and shape.
_common = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("dev", max_examples=30, **_common)
settings.register_profile("ci", max_examples=60, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)
# mutation testing (nox -s mutation) runs the suite once per mutant: few examples, the same ones
# every run, and no example database (a mutant's failures must not steer the next mutant's run)
settings.register_profile("mutation", max_examples=10, derandomize=True, database=None, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser):
    parser.addoption(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="array library to run the layers in (repeatable; default: both)",
    )


def pytest_configure(config):
    # argparse's choices already turn an unknown backend into a usage error
    config.backends = list(dict.fromkeys(config.getoption("backend") or BACKENDS))


def pytest_report_header(config):
    lines = [f"handlayers backends: {', '.join(config.backends)}"]
    devices = ", ".join(str(d) for d in JAX_DEVICES) or JAX_UNAVAILABLE
    lines.append(f"jax {jax.__version__} devices: {devices}; matmul precision: highest")
    lines.append(f"hypothesis profile: {settings.get_current_profile_name()}")
    return lines


@pytest.fixture(scope="session")
def backends(request):
    """Every backend of this run: for a test that checks one example on all of them at once."""
    return request.config.backends


@pytest.fixture(autouse=True)
def release_compiled():
    """After each test, drop jax's compiled programs if this worker holds too many: XLA:CPU maps
    each one into memory, and a worker that reaches Linux's vm.max_map_count segfaults at its next
    compilation (it did, twice in one CI run, at 52% and 80% of the suite)."""
    yield
    from handlayers.testing import release_compiled

    release_compiled()


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", metafunc.config.backends)
    if "dtype" in metafunc.fixturenames:
        metafunc.parametrize("dtype", DTYPES)


def pytest_collection_modifyitems(config, items):
    # Every check needs jax (the oracle); without a device for it, skip them all and say why.
    if JAX_UNAVAILABLE:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=JAX_UNAVAILABLE))
    # A test that takes no `backend` (or `backends`) runs once, not once per backend run: in the run
    # that includes numpy, or, if it is marked `jax` (it makes jax arrays itself), in the one with jax.
    keep, drop = [], []
    for item in items:
        runs_in = "jax" if item.get_closest_marker("jax") else "numpy"
        takes_backend = {"backend", "backends"} & set(getattr(item, "fixturenames", ()))
        (keep if takes_backend or runs_in in config.backends else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
