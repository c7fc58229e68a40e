-- Conversions to advisory and churns. The probability that drew each outcome (p_true) is left out:
-- it is evaluation truth, not observable.
select
    outcome_id,
    client_id,
    outcome_date,
    outcome_type,
    amount_usd
from {{ source('raw', 'raw_outcomes') }}
