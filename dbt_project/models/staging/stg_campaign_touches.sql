-- Marketing actions taken and whether the client responded. The simulator's true response
-- probabilities (p_response_true, p_true_*) are left out: they are evaluation truth, not observable.
select
    touch_id,
    client_id,
    touch_date,
    action,
    campaign_id,
    responded
from {{ source('raw', 'raw_campaign_touches') }}
