"""`qbo-actions executions ...` on the server's shell: the same operations as the console, audited as cli:<user>."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner

from actions.cli import cli
from services.bootstrap import Services
from simulators.scenario import Simulators, seed_deal
from tests.builders import sales_inputs
from tests.conftest import Perform, only_callback
from tests.e2e.ops.conftest import UNKNOWN_PRODUCT


def test_retry_with_a_product_mapping_from_the_shell(
    held_unmatched: Any, env: dict[str, str], services: Services, sims: Simulators, run_jobs: Any
) -> None:
    held = held_unmatched()
    item = sims.add_entity("Item", {"Name": "Gizmo (QBO)", "Type": "Service", "IncomeAccountRef": {"value": "1"}})

    result = CliRunner(env=env).invoke(cli, ["executions", "retry", held.id, "--map", f"777={item['Id']}"])
    assert result.exit_code == 0, result.output
    run_jobs()

    done = services.executions.get(held.id)
    assert done is not None and only_callback(sims, done)["hs_execution_state"] == "SUCCESS"
    [entry] = services.audit.of_execution(held.id)
    assert entry.actor.startswith("cli:") and entry.action == "map_and_retry"


def test_retry_with_corrected_inputs_and_bad_ones_from_the_shell(
    perform: Perform, env: dict[str, str], services: Services, sims: Simulators, settings: Any, run_jobs: Any
) -> None:
    failed = perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs())
    runner = CliRunner(env=env)

    bad = runner.invoke(cli, ["executions", "retry", failed.id, "--input", "create_missing_products=perhaps"])
    malformed = runner.invoke(cli, ["executions", "retry", failed.id, "--input", "create_missing_products"])
    good = runner.invoke(cli, ["executions", "retry", failed.id, "--input", "create_missing_products=yes"])
    run_jobs()

    assert bad.exit_code != 0 and "create_missing_products" in bad.output
    assert malformed.exit_code != 0
    assert good.exit_code == 0, good.output
    assert services.executions.get(failed.id).state == "succeeded"  # type: ignore[union-attr]


def test_cancel_and_mark_booked_from_the_shell(
    held_unmatched: Any, env: dict[str, str], services: Services, sims: Simulators, run_jobs: Any
) -> None:
    first, second = held_unmatched(), held_unmatched()
    invoice = sims.add_entity(
        "Invoice",
        {
            "CustomerRef": {"value": sims.add_entity("Customer", {"DisplayName": "By hand"})["Id"]},
            "Line": [
                {"Amount": 5, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
            ],
        },
    )
    runner = CliRunner(env=env)

    cancelled = runner.invoke(cli, ["executions", "cancel", first.id, "--note", "sent twice"])
    booked = runner.invoke(cli, ["executions", "mark-booked", second.callback_id, "--quickbooks-id", invoice["Id"]])
    again = runner.invoke(cli, ["executions", "cancel", first.id])
    run_jobs()

    assert cancelled.exit_code == 0 and "sent twice" in cancelled.output, cancelled.output
    assert booked.exit_code == 0, booked.output
    assert again.exit_code != 0 and "only a waiting" in again.output
    assert only_callback(sims, services.executions.get(first.id))["failure_reason"] == "CANCELLED"  # type: ignore[arg-type]
    assert only_callback(sims, services.executions.get(second.id))["quickbooks_id"] == invoice["Id"]  # type: ignore[arg-type]


def test_retry_all_shows_progress_and_queues_every_match(
    perform: Perform, env: dict[str, str], services: Services, sims: Simulators, settings: Any, run_jobs: Any
) -> None:
    failed = [perform(seed_deal(sims, line_items=UNKNOWN_PRODUCT)["deal"], inputs=sales_inputs()) for _ in range(3)]
    runner = CliRunner(env=env)

    listed = runner.invoke(cli, ["executions", "list", "--state", "failed", "--reason", "LINE_ITEM_NOT_MATCHED"])
    refused = runner.invoke(cli, ["executions", "retry-all", "--state", "succeeded", "--yes"])
    result = runner.invoke(
        cli, ["executions", "retry-all", "--reason", "LINE_ITEM_NOT_MATCHED", "--since", "1h", "--yes"]
    )

    assert "reasons: LINE_ITEM_NOT_MATCHED 3" in listed.output
    assert refused.exit_code != 0 and "failed or held" in refused.output
    assert result.exit_code == 0, result.output
    assert "Retrying" in result.output and "Queued 3 executions again; skipped 0" in result.output
    assert {services.executions.get(e.id).state for e in failed} == {"queued"}  # type: ignore[union-attr]
