"""The data contract as blocking asset checks on the raw assets: the rules `marketing-ml validate` runs,
run inside the step that builds the tables, so a table that breaks them is never written (the warehouse
keeps what it had) and nothing downstream runs on it."""

from __future__ import annotations

import dagster as dg

from marketing_ml.sources.contract import CONTRACT
from marketing_ml.sources.validation import TableReport, format_table_report

CONTRACT_CHECK = "data_contract"


def contract_check_spec(table: str) -> dg.AssetCheckSpec:
    schema = CONTRACT[table]
    return dg.AssetCheckSpec(
        CONTRACT_CHECK,
        asset=schema.metadata["asset"],
        blocking=True,
        description=(f"The rows meet the data contract of `{table}` (README, 'Bring your own data'): columns, "
                     "types, keys, allowed values, known clients, dates. A failure leaves the table unwritten."),
    )


def contract_check_results(reports: dict[str, TableReport]) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=CONTRACT[name].metadata["asset"],
            check_name=CONTRACT_CHECK,
            passed=not report.violations,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": report.rows,
                "violations": len(report.violations),
                "report": dg.MetadataValue.md("```\n" + "\n".join(format_table_report(report)) + "\n```"),
            },
        )
        for name, report in reports.items()
    ]


def fail_on_violations(reports: dict[str, TableReport]) -> None:
    """Stop the step before it writes anything when a table breaks the contract; the report is the error."""
    broken = [r for r in reports.values() if r.violations]
    if broken:
        text = "\n".join(line for r in broken for line in format_table_report(r))
        raise dg.Failure(description=f"The data breaks its contract; nothing was written.\n{text}")
