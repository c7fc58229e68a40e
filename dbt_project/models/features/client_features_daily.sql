-- The feature vector of every client active at the start of each as-of date D: one row per
-- (client_id, as_of_date). Point in time: every feature reads only rows dated before D (events and
-- touches through the intermediate models, outcomes through int_client_status, the profile snapshot is
-- as of enrolment or the history start). Built per window of as-of dates (a Dagster partition range);
-- a re-run replaces its window. A new or dropped feature changes the table's columns on the next run
-- (older as-of dates hold NULL for a new one until they are rebuilt: backfill every partition).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook=["{{ delete_feature_window() }}", "{{ plan_joins_as_written() }}"],
    post_hook="{{ restore_join_planning() }}",
) }}
{{ feature_vectors() }}
