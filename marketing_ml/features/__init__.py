"""Point-in-time client features, built by dbt (dbt_project/) as Dagster assets, and their catalog."""
