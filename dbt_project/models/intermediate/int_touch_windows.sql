-- Campaign touches in the 180 days before each as-of date: one row per (client, as-of date) with at least
-- one touch in [D-180, D-1]. Touches are sparse (about 1.5% of clients a day), so a range join of the
-- touches onto the window's as-of dates is small.
{%- set w = feature_window() %}
{%- set lookback = var('touch_lookback_days') %}

with as_of_dates as (
    {{ date_series(w.min_date, w.as_of_days, 'as_of_date') }}
),

touches as (
    select client_id, touch_date, responded
    from {{ ref('stg_campaign_touches') }}
    where touch_date >= {{ date_literal(w.touches_from) }}
        and touch_date < {{ date_literal(w.max_date) }}
)

select
    touches.client_id,
    as_of_dates.as_of_date,
    count(*) as touches,
    sum(case when touches.responded then 1 else 0 end) as touch_responses,
    max(touches.touch_date) as last_touch_date
from touches
inner join as_of_dates
    on touches.touch_date < as_of_dates.as_of_date
    and touches.touch_date >= {{ add_days('as_of_dates.as_of_date', -lookback) }}
group by touches.client_id, as_of_dates.as_of_date
