-- Windowed activity counts: one row per (client, as-of date D) for every client active at the start of
-- D, with each measure summed over the N days before D ([D-N, D-1]) and the last day with events.
--
-- How (one pass, no per-day loop): running totals are computed on the sparse daily rows (days with
-- events), carried forward onto a dense (client, day) grid through the last day with events, and a
-- window sum over [D-N, D-1] is the running total at D-1 minus the one N days earlier (a LAG on the
-- dense grid). The grid spans [first as-of - longest window, last as-of - 1] only.
{%- set w = feature_window() %}
{%- set measures = engagement_measures() %}
{%- set by_client_day = "over (partition by client_id order by grid_date)" %}

with running_totals as (
    select
        client_id,
        activity_date,
        {%- for measure, _ in measures %}
        cast(sum({{ measure }}) over (
            partition by client_id order by activity_date rows between unbounded preceding and current row
        ) as integer) as {{ measure }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ ref('int_client_activity_daily') }}
),

grid_days as (
    {{ date_series(w.events_from, w.activity_days, 'grid_date') }}
),

grid as (
    select
        status.client_id,
        grid_days.grid_date,
        max(activity.activity_date) over (
            partition by status.client_id order by grid_days.grid_date
            rows between unbounded preceding and current row
        ) as last_activity_date
    from {{ ref('int_client_status') }} as status
    cross join grid_days
    left join {{ ref('int_client_activity_daily') }} as activity
        on activity.client_id = status.client_id
        and activity.activity_date = grid_days.grid_date
),

dense_totals as (
    select
        grid.client_id,
        grid.grid_date,
        grid.last_activity_date,
        {%- for measure, _ in measures %}
        coalesce(running_totals.{{ measure }}, 0) as {{ measure }}{{ "," if not loop.last }}
        {%- endfor %}
    from grid
    left join running_totals
        on running_totals.client_id = grid.client_id
        and running_totals.activity_date = grid.last_activity_date
),

windows as (
    select
        client_id,
        {{ add_days('grid_date', 1) }} as as_of_date,
        last_activity_date,
        {%- for measure, measure_windows in measures %}
        {%- set outer_loop = loop %}
        {%- for days in measure_windows %}
        cast({{ measure }} - coalesce(lag({{ measure }}, {{ days }}) {{ by_client_day }}, 0) as integer)
            as {{ measure }}_{{ days }}d{{ "," if not (outer_loop.last and loop.last) }}
        {%- endfor %}
        {%- endfor %}
    from dense_totals
)

-- the per-client dates join after the windows, so the grid carries only what the windows need
select
    windows.*,
    status.enrollment_date,
    status.converted_on
from windows
inner join {{ ref('int_client_status') }} as status
    on status.client_id = windows.client_id
where windows.as_of_date >= {{ date_literal(w.min_date) }}
    and status.enrollment_date < windows.as_of_date
    and (status.churned_on is null or status.churned_on >= windows.as_of_date)
