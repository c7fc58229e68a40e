{#- The select of the feature vectors for the run's window of as-of dates: the body of
    client_features_daily, shared with client_features_online (streaming rescoring), so the two can never
    compute a feature differently. See client_features_daily.sql for the point-in-time rules. -#}
{% macro feature_vectors() %}
{%- set windows = var('engagement_windows') %}
{%- set lookback = windows | max %}
{%- set touch_lookback = var('touch_lookback_days') %}
{%- set channels = var('channels') %}
{%- set self_service = ['web', 'mobile_app', 'email'] %}
{%- set counted = ['events'] %}
{%- for channel in channels %}{% do counted.append(channel ~ '_events') %}{% endfor %}
{%- for event_type in var('event_types') %}{% do counted.append(event_type) %}{% endfor %}

with engagement as (
    select
        *,
        -- events in the 30 days before the last 30
        events_60d - events_30d as events_prior_30d
    from {{ ref('int_engagement_windows') }}
),

touches as (
    select * from {{ ref('int_touch_windows') }}
),

profiles as (
    select
        client_id,
        date_of_birth,
        target_retirement_age,
        annual_income,
        balance_401k,
        contribution_rate,
        employer_match_rate,
        -- employee contributions plus the employer's match, which matches up to its rate
        contribution_rate + least(employer_match_rate, contribution_rate) as savings_rate,
        outside_assets,
        balance_401k + outside_assets as investable_assets,
        tenure_years,
        dependents,
        service_tier,
        risk_tolerance,
        marital_status,
        home_owner
    from {{ ref('stg_clients') }}
),

vectors as (
    select
        engagement.client_id,
        engagement.as_of_date,

        -- status
        coalesce(engagement.converted_on < engagement.as_of_date, false) as is_converted,
        {{ days_between('engagement.enrollment_date', 'engagement.as_of_date') }} as days_since_enrollment,

        -- engagement: counts over the 7, 30 and 90 days before the as-of date
        {%- for measure in counted %}
        {%- for days in windows %}
        cast(engagement.{{ measure }}_{{ days }}d as bigint) as {{ measure }}_{{ days }}d,
        {%- endfor %}
        {%- endfor %}
        -- no send log exists, so opens are measured against time: the share of days with an open
        cast(engagement.email_open_days_{{ lookback }}d as double) / {{ lookback }} as email_open_rate_{{ lookback }}d,
        {{ ratio('engagement.email_click_' ~ lookback ~ 'd', 'engagement.email_open_' ~ lookback ~ 'd') }}
            as email_click_rate_{{ lookback }}d,
        case
            when engagement.last_activity_date is null then {{ lookback }}
            else least({{ days_between('engagement.last_activity_date', 'engagement.as_of_date') }}, {{ lookback }})
        end as days_since_last_event,
        -- (last 30 - prior 30) / (last 30 + prior 30): -1 stopped, 0 steady, +1 new
        {{ ratio('engagement.events_30d - engagement.events_prior_30d',
                 'engagement.events_30d + engagement.events_prior_30d') }} as activity_trend_30d,

        -- behavioural: channel mix over the 90 days before the as-of date
        {%- for channel in channels %}
        {{ ratio('engagement.' ~ channel ~ '_events_' ~ lookback ~ 'd', 'engagement.events_' ~ lookback ~ 'd') }}
            as {{ channel }}_share_{{ lookback }}d,
        {%- endfor %}
        case
            when engagement.events_{{ lookback }}d = 0 then 'none'
            {%- for channel in channels %}
            -- ties go to the channel listed first
            when engagement.{{ channel }}_events_{{ lookback }}d = greatest(
                {%- for other in channels %}engagement.{{ other }}_events_{{ lookback }}d{{ ", " if not loop.last }}{% endfor -%}
            ) then '{{ channel }}'
            {%- endfor %}
        end as dominant_channel_{{ lookback }}d,
        {{ ratio('engagement.mobile_device_events_' ~ lookback ~ 'd', 'engagement.events_' ~ lookback ~ 'd') }}
            as mobile_share_{{ lookback }}d,
        {{ ratio('engagement.' ~ (self_service | join('_events_' ~ lookback ~ 'd + engagement.')) ~ '_events_' ~ lookback ~ 'd',
                 'engagement.events_' ~ lookback ~ 'd') }} as self_service_share_{{ lookback }}d,
        cast(engagement.calculator_use_{{ lookback }}d
            + engagement.webinar_attendance_{{ lookback }}d
            + engagement.document_download_{{ lookback }}d as bigint) as education_events_{{ lookback }}d,
        cast(coalesce(touches.touches, 0) as bigint) as touches_{{ touch_lookback }}d,
        cast(coalesce(touches.touch_responses, 0) as bigint) as touch_responses_{{ touch_lookback }}d,
        {{ ratio('coalesce(touches.touch_responses, 0)', 'coalesce(touches.touches, 0)') }}
            as touch_response_rate_{{ touch_lookback }}d,
        coalesce({{ days_between('touches.last_touch_date', 'engagement.as_of_date') }}, {{ touch_lookback }})
            as days_since_last_touch,

        -- financial: the profile snapshot, and age-dependent quantities as of the as-of date
        {{ days_between('profiles.date_of_birth', 'engagement.as_of_date') }} / 365.25 as age,
        greatest(profiles.target_retirement_age
            - {{ days_between('profiles.date_of_birth', 'engagement.as_of_date') }} / 365.25, 0.0) as years_to_retirement,
        profiles.annual_income,
        profiles.balance_401k,
        profiles.contribution_rate,
        profiles.employer_match_rate,
        profiles.savings_rate,
        profiles.outside_assets,
        profiles.investable_assets,
        profiles.tenure_years,
        profiles.dependents,
        profiles.service_tier,
        profiles.risk_tolerance,
        profiles.marital_status,
        profiles.home_owner
    from engagement
    inner join profiles
        on profiles.client_id = engagement.client_id
    left join touches
        on touches.client_id = engagement.client_id
        and touches.as_of_date = engagement.as_of_date
)

select
    *,
    -- projected 401(k) at retirement (4% real growth, contributions at the savings rate) over the
    -- rule-of-thumb need of 10x income: 1.0 is on track
    {{ ratio('balance_401k * power(1.04, years_to_retirement)
              + annual_income * savings_rate * (power(1.04, years_to_retirement) - 1) / 0.04',
             '10 * annual_income') }} as retirement_readiness,
    -- log of the assets an advisor could gather within a few years: investable assets plus 3 years of income
    ln(1 + investable_assets + 3 * annual_income) as wealth_potential,
    -- first matching rule wins; thresholds are documented in client_features_daily.yml
    case
        when days_since_enrollment <= 90 then 'new'
        when events_30d = 0 then 'dormant'
        when activity_trend_30d <= -0.5 or document_download_30d >= 2 then 'at_risk'
        when events_30d >= 20
            or calculator_use_30d + advisor_call_30d + advisor_meeting_30d + webinar_attendance_30d >= 3
            then 'engaged'
        else 'growing'
    end as lifecycle_segment
from vectors
{% endmacro %}
