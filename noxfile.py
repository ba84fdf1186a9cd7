"""Sessions: the suite on each backend, combined coverage, lint; and, not by default, the GPU."""

import nox

nox.options.sessions = ["tests", "coverage", "lint"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
@nox.parametrize("backend", ["numpy", "jax"])
def tests(session, backend):
    """Run the suite with the layers on one backend, recording coverage to its own data file."""
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run(
        "coverage", "run", "-m", "pytest", "--backend", backend, *session.posargs,
        env={"COVERAGE_FILE": f".coverage.{backend}"},
    )  # fmt: skip


@nox.session
def coverage(session):
    """Combine the backends' coverage data and fail under 100% branch coverage."""
    session.install("coverage[toml]>=7.4")
    session.run("coverage", "combine", "--keep", ".coverage.numpy", ".coverage.jax")
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
