"""Point-in-time client features, built by dbt (dbt_project/) as Dagster assets, and their catalog."""

from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
