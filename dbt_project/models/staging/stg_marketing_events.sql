-- Client interactions, one row per event.
select
    event_id,
    client_id,
    event_date,
    event_ts,
    channel,
    event_type,
    device,
    campaign_id
from {{ source('raw', 'raw_marketing_events') }}
