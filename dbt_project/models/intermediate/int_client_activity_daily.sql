-- One row per client and day with at least one event, over the days the window's features read:
-- [first as-of date - longest window, last as-of date - 1]. Counts per channel, event type and device.
{%- set w = feature_window() %}

select
    client_id,
    event_date as activity_date,
    -- 4-byte counts: these columns are carried through a (client x day) grid, width is memory
    cast(count(*) as integer) as events,
    {%- for channel in var('channels') %}
    cast(sum(case when channel = '{{ channel }}' then 1 else 0 end) as integer) as {{ channel }}_events,
    {%- endfor %}
    {%- for event_type in var('event_types') %}
    cast(sum(case when event_type = '{{ event_type }}' then 1 else 0 end) as integer) as {{ event_type }},
    {%- endfor %}
    cast(sum(case when device = 'mobile' then 1 else 0 end) as integer) as mobile_device_events,
    max(case when event_type = 'email_open' then 1 else 0 end) as email_open_days
from {{ ref('stg_marketing_events') }}
where event_date >= {{ date_literal(w.events_from) }}
    and event_date < {{ date_literal(w.max_date) }}
group by client_id, event_date
