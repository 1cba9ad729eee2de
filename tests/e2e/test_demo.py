"""`make demo`: the embedded demo installs, connects and books every action, and says so."""

from __future__ import annotations

import pytest

from actions.demo import run_demo


def test_the_demo_installs_connects_and_reports_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo() == 0
    printed = capsys.readouterr().out
    assert "-> 200 (installed)" in printed
    assert "Intuit's consent -> /settings/companies/" in printed and "(saved)" in printed
    # Seven actions, and the held invoice an operator fixed through the API.
    assert printed.count('"hs_execution_state": "SUCCESS"') == 8
    assert "GET /ops/api/executions?state=held -> {'LINE_ITEM_NOT_MATCHED': 1}" in printed
    assert "/retry" in printed and "-> 202 (waiting)" in printed
    assert printed.rstrip().endswith("Demo finished.")
