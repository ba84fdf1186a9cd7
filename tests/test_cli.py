"""The command line."""

import pytest

from handlayers.__main__ import main


def test_lab_prints_the_worked_examples(capsys):
    """`handlayers lab` prints the lab's numbers as the scalar layers compute them."""
    assert main(["lab"]) == 0
    out = capsys.readouterr().out
    assert "(da, db, dc) = (10.0, 10.0, 10.0)" in out
    assert "(dx, dw1, db1, dw2, db2, dy) = (0.0, 0.0, 0.0, 0.0, 1.0, -1.0)" in out
    assert "Sigmoid(2) = 0.8807970779778823" in out


def test_unknown_command_is_a_usage_error(capsys):
    """An unknown command exits with argparse's usage error, 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2
