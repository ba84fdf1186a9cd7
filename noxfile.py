"""Sessions: by default a 5-minute run of the suite's core and lint; `nox -s tests coverage lint`
the whole suite on every backend with coverage, and lint (CI); the GPU, the benchmarks and
mutation testing on request."""

import os
import shutil
import time

import nox

nox.options.sessions = ["quick", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
def quick(session):
    """The suite's core, within 5 minutes on 2 cores: every layer against the oracle on both
    backends and dtypes, the kinks, and the checker's own tests but those marked ``slow``
    (``[tool.handlayers.quick]`` in pyproject.toml); no coverage. Pass pytest options after
    ``--``: ``nox -s quick -- -k relu``.

    ``--dist worksteal``: a worker that runs out of tests takes some of the other's, so that the
    heaviest layers' tests (up to 25 s each) do not end the run on one core (docs/testing.md).
    """
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"))
    quick = PYPROJECT["tool"]["handlayers"]["quick"]["tests"]
    session.run("pytest", "-n", "auto", "--dist", "worksteal", "-m", "not slow", *quick, *session.posargs)


@nox.session
def tests(session):
    """Run the suite on the numpy and jax backends (CPU) in one run, in parallel, with coverage.

    One run serves both backends: each drawn example's oracle is computed once and compared with
    both. ``-n auto`` starts one pytest-xdist worker per core (each with one BLAS thread, see
    conftest.py). Pass pytest options after ``--``: ``nox -s tests -- --backend jax -n 0``.
    """
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", "-n", "auto", "--cov", "--cov-report=", *session.posargs)


@nox.session
def coverage(session):
    """Report the tests session's branch coverage (both backends) and fail under 100%."""
    session.install("coverage[toml]>=7.4")
    session.run("coverage", "report", *session.posargs)


@nox.session
def lint(session):
    """Check style and formatting with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".", *session.posargs)


@nox.session(venv_backend="none")
def tests_gpu(session):
    """Run the jax tests on the GPU with the python at hand: no virtualenv, no install, no network."""
    session.run(
        "python", "-m", "pytest", "--backend", "jax", *session.posargs,
        env={"JAX_PLATFORMS": "cuda", "JAX_DEFAULT_MATMUL_PRECISION": "highest"},
        external=True,
    )  # fmt: skip


@nox.session
def bench(session):
    """Time the layers, the checkers and the suite against their baselines (see benchmarks/).

    ``nox -s bench -- --torch`` also installs torch 2.13.0 (CPU) to time it alongside; other
    arguments go to ``python -m benchmarks`` (``--quick``, ``--only step``).
    """
    args = [a for a in session.posargs if a != "--torch"]
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "bench"))
    if "--torch" in session.posargs:
        session.install("torch==2.13.0")
    session.run("python", "-m", "benchmarks", *args)


@nox.session
def mutation(session):
    """Mutation testing (mutmut): the suite must kill every mutant or it must be a listed equivalent.

    mutmut mutates the layers and the checker's verdict; every mutant must be killed by the suite
    or listed, with the reason, in tests/equivalent_mutants.md. Writes mutation-results.json.

    What is mutated and which tests run: ``[tool.mutmut]`` and ``[tool.handlayers.mutation]`` in
    pyproject.toml. JAX and fork: mutmut's fork server (``process_isolation = "forkserver"``)
    imports numpy, jax and pytest once without starting jax, then forks one process per mutant,
    which starts jax itself (conftest.py); forking after jax has started its threads can deadlock,
    and tests/mutation/plugin.py stops the run if a test process ever inherits a started jax.
    ``nox -s mutation -- 'handlayers.scalar.*'`` runs only the mutants named.
    """
    session.install(*nox.project.dependency_groups(PYPROJECT, "test", "mutation"))
    shutil.rmtree("mutants", ignore_errors=True)  # mutmut keeps verdicts between runs: start afresh
    run = session.posargs or PYPROJECT["tool"]["handlayers"]["mutation"]["run"]
    env = {
        "HYPOTHESIS_PROFILE": "mutation",
        # each mutant's tests run in a fresh process: a persistent compilation cache spares them
        # compiling every shape again, and every program goes into it (jax skips programs that
        # compile in under a second by default; the oracles take 0.2 to 0.5 s). Should XLA:CPU
        # crash, mutmut files that mutant as a crash, never as killed.
        "JAX_COMPILATION_CACHE_DIR": os.path.abspath(".jax_cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        # every forked process imports pytest's plugins and the mutated modules: keep their bytecode
        "PYTHONDONTWRITEBYTECODE": "",
    }
    started = time.monotonic()
    session.run("mutmut", "run", *run, env=env)
    session.run("python", "-m", "tests.mutation.results", f"{time.monotonic() - started:.0f}", *run)
