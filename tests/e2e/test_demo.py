"""`make demo`: the embedded demo installs, connects and books every action, and says so."""

from __future__ import annotations

import pytest

from actions.demo import run_demo


def test_the_demo_installs_connects_and_reports_every_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo() == 0
    printed = capsys.readouterr().out
    assert "-> 200 (installed)" in printed
    assert "Intuit's consent -> /settings/companies/" in printed and "(saved)" in printed
    assert printed.count('"hs_execution_state": "SUCCESS"') == 7
    assert "LINE_ITEM_NOT_MATCHED" in printed and printed.rstrip().endswith("Demo finished.")
