"""Sessions: the suite on every backend with coverage, lint; not by default, the GPU and the benchmarks."""

import nox

nox.options.sessions = ["tests", "coverage", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


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
