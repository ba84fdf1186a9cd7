"""pytest plugin for the mutation run (``nox -s mutation``), loaded with ``-p tests.mutation.plugin``.

- It proves that each forked test process starts jax itself. mutmut forks one process per
  mutant from its fork server; a fork after jax has started its runtime (its thread pools) can
  deadlock, so the fork server only imports jax (``tests/mutation/preload.txt``). This module is
  imported before ``conftest.py`` starts jax, so it sees whether the process inherited a started
  jax, and then stops the run: a wrong setup fails at once instead of hanging now and then.
- It runs a mutant's tests fastest first, by the durations mutmut measured in its first run of
  the suite (``mutmut-stats.json``), so that a killed mutant is killed soon (with ``-x``, the
  first failure ends the run). mutmut's fork server passes the tests in no particular order.
"""

import json
import math
import sys
from pathlib import Path

import pytest


def _jax_started() -> bool:
    xla_bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(xla_bridge is not None and xla_bridge._backends)


# read at import, before conftest.py runs
INHERITED_A_STARTED_JAX = _jax_started()


def pytest_configure(config: pytest.Config) -> None:
    if INHERITED_A_STARTED_JAX:
        raise pytest.UsageError(
            "mutation run: jax was already started when this test process began (forked after jax started?)"
        )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stats = Path("mutmut-stats.json")  # mutmut runs the tests in its mutants/ folder
    if stats.is_file():
        durations = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: durations.get(item.nodeid, math.inf))
