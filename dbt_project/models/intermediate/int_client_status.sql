-- One row per client who is active on at least one as-of date of the run's window, with the dates that
-- decide activity and conversion. Outcomes are read only before the last as-of date, and every use below
-- compares them with the as-of date, so an outcome on or after D never changes a feature as of D.
{%- set w = feature_window() %}

with outcomes as (
    select
        client_id,
        min(case when outcome_type = 'conversion' then outcome_date end) as converted_on,
        min(case when outcome_type = 'churn' then outcome_date end) as churned_on
    from {{ ref('stg_outcomes') }}
    where outcome_date < {{ date_literal(w.max_date) }}
    group by client_id
)

select
    clients.client_id,
    clients.enrollment_date,
    outcomes.converted_on,
    outcomes.churned_on
from {{ ref('stg_clients') }} as clients
left join outcomes
    on outcomes.client_id = clients.client_id
where clients.enrollment_date < {{ date_literal(w.max_date) }}
    and (outcomes.churned_on is null or outcomes.churned_on >= {{ date_literal(w.min_date) }}){{ online_clients_filter('clients.client_id') }}
