-- The feature vectors of the clients streaming rescoring is asked about, as of one date, computed by
-- exactly the SQL of client_features_daily (the `feature_vectors` macro) over the raw events plus the
-- streamed events not yet in a raw partition. Built only by streaming rescoring, which passes
-- --vars '{min_date: D, max_date: D, online_clients: [ids]}'; it is not part of the daily graph.
-- depends_on: {{ source('streaming', 'streamed_events') }}
{{ config(materialized='table') }}
{{ feature_vectors() }}
