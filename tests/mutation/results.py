"""Summarise a mutmut run (``nox -s mutation``) and fail unless every mutant is explained.

Reads mutmut's verdicts from ``mutants/`` and the documented equivalent mutants from
``tests/equivalent_mutants.md``, writes ``mutation-results.json`` and exits 1 when a mutant in
scope survived without being listed as equivalent, timed out, or was not run, or when a listed
equivalent no longer survives (the list must stay true).

A survivor is matched to the list by its function and the line the mutation wrote, not by
mutmut's number, which changes whenever the code around it does. Run from the repository root,
with mutmut installed: ``python -m tests.mutation.results SECONDS MUTANT_GLOB...`` (the run's
duration and the names it ran, as given to ``mutmut run``).
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mutmut import __version__ as mutmut_version
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

EQUIVALENTS = Path("tests/equivalent_mutants.md")
RESULTS = Path("mutation-results.json")
# an entry: "- `handlayers.scalar.ReLU._forward`: `the line as mutated` — why it is the same function"
ENTRY = re.compile(r"^- `(?P<function>[^`]+)`: `(?P<line>[^`]+)`")


def function_of(mutant: str) -> str:
    """``handlayers.scalar.xǁReLUǁ_forward__mutmut_3`` -> ``handlayers.scalar.ReLU._forward``."""
    module, _, name = mutant.rpartition(".")
    name = name.rpartition("__mutmut_")[0]
    name = name.replace("xǁ", "", 1).replace("ǁ", ".") if name.startswith("xǁ") else name.removeprefix("x_")
    return f"{module}.{name}"


def mutated_line(mutant: str, path: Path) -> str:
    """The line(s) the mutation wrote, stripped, joined by `` / `` when there are several."""
    diff = get_diff_for_mutant(mutant, path=path).splitlines()
    added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    return " / ".join(added)


def breaks_import(mutant: str) -> bool:
    """Whether the mutant's module fails to import with the mutant active (a mutant of code run at
    import, like ``Spec.__post_init__`` for SPECS). No test can then be collected: pytest exits 4
    (a usage error) and mutmut counts that as 255, a "timeout"; it is a kill."""
    module = mutant.rpartition(".")[0]
    env = {**os.environ, "MUTANT_UNDER_TEST": mutant}
    run = subprocess.run([sys.executable, "-c", f"import {module}"], cwd="mutants", env=env, capture_output=True)
    return run.returncode != 0


def equivalents() -> set[tuple[str, str]]:
    """``(function, mutated line)`` for every mutant listed as equivalent."""
    return {(m["function"], m["line"]) for m in map(ENTRY.match, EQUIVALENTS.read_text().splitlines()) if m}


def main(seconds: float, globs: list[str]) -> int:
    verdicts: dict[str, tuple[str, Path]] = {}  # mutant -> (status, source file)
    made_in_package = 0
    killed_at_import: list[str] = []
    for path in walk_mutatable_files():
        data = SourceFileMutationData(path=path)
        data.load()
        made_in_package += len(data.exit_code_by_key)
        for mutant, exit_code in data.exit_code_by_key.items():
            if any(fnmatch.fnmatch(mutant, g) for g in globs):
                status = status_by_exit_code[exit_code]
                if exit_code == 255 and breaks_import(mutant):
                    status = "killed"
                    killed_at_import.append(mutant)
                verdicts[mutant] = (status, path)

    listed = equivalents()
    seen: set[tuple[str, str]] = set()
    equivalent, unexplained, other = [], [], []
    for mutant, (status, path) in sorted(verdicts.items()):
        if status == "killed":
            continue
        if status != "survived":
            other.append({"mutant": mutant, "status": status})
            continue
        key = (function_of(mutant), mutated_line(mutant, path))
        entry = {"mutant": mutant, "function": key[0], "line": key[1]}
        if key in listed:
            seen.add(key)
            equivalent.append(entry)
        else:
            unexplained.append(entry)
    run_functions = {function_of(mutant) for mutant in verdicts}  # a partial run checks its own entries only
    stale = [{"function": f, "line": line} for f, line in sorted(listed - seen) if f in run_functions]

    counts = Counter(status for status, _ in verdicts.values())
    summary = {
        "date": datetime.date.today().isoformat(),
        "mutmut": mutmut_version,
        "seconds": round(seconds),
        "scope": globs,
        "made_in_package": made_in_package,
        "made": len(verdicts),
        "killed": counts["killed"],
        "killed_at_import": len(killed_at_import),
        "survived": counts["survived"],
        "survived_equivalent": len(equivalent),
        "survived_unexplained": len(unexplained),
        "timeout": counts["timeout"],
        "other": len(other) - counts["timeout"],
        "equivalent": equivalent,
        "unexplained": unexplained,
        "not_killed_or_survived": other,
        "stale_equivalents": stale,
    }
    RESULTS.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")

    print(
        f"mutation: {summary['made']} mutants in scope ({made_in_package} made in handlayers), "
        f"{summary['killed']} killed ({len(killed_at_import)} of them at import), {summary['survived']} survived "
        f"({len(equivalent)} listed as equivalent), {summary['timeout']} timed out, "
        f"{summary['other']} other; {summary['seconds']} s; written to {RESULTS}"
    )
    for entry in unexplained:
        print(f"  survived, not listed in {EQUIVALENTS}: {entry['mutant']}: {entry['line']}")
    for entry in other:
        print(f"  {entry['status']}: {entry['mutant']}")
    for entry in stale:
        print(f"  listed in {EQUIVALENTS} but no such mutant survived: {entry['function']}: {entry['line']}")
    return 1 if unexplained or other or stale else 0


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), sys.argv[2:]))
