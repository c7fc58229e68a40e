-- Plan participants: the profile columns features use. Names, e-mail, phone and gender stay in raw
-- (personal data, and gender is not a legitimate targeting attribute).
select
    client_id,
    date_of_birth,
    marital_status,
    cast(dependents as bigint) as dependents,
    annual_income,
    balance_401k,
    contribution_rate,
    employer_match_rate,
    employer_id,
    industry,
    tenure_years,
    enrollment_date,
    risk_tolerance,
    outside_assets,
    home_owner,
    service_tier,
    assigned_advisor_id,
    cast(target_retirement_age as bigint) as target_retirement_age
from {{ source('raw', 'raw_clients') }}
