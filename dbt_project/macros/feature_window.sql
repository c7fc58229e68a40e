{#- The window of as-of dates one run builds, from the vars Dagster passes for a partition range
    (`min_date`, `max_date`: first and last as-of date, ISO dates), with the dates derived from it.
    "As of D" is the start of day D: a feature as of D reads only rows dated before D. -#}
{% macro feature_window() %}
    {%- set min_date = var('min_date', none) -%}
    {%- set max_date = var('max_date', none) -%}
    {%- if not execute -%}
        {#- parsing: the manifest does not depend on the window; any valid one renders -#}
        {%- set min_date = min_date or '2000-01-01' -%}
        {%- set max_date = max_date or min_date -%}
    {%- endif -%}
    {%- if min_date is none or max_date is none -%}
        {{ exceptions.raise_compiler_error(
            "client_features_daily is built for a window of as-of dates: pass "
            ~ "--vars '{min_date: YYYY-MM-DD, max_date: YYYY-MM-DD}' (Dagster passes the partition range).") }}
    {%- endif -%}
    {%- set first = modules.datetime.date.fromisoformat(min_date | string) -%}
    {%- set last = modules.datetime.date.fromisoformat(max_date | string) -%}
    {%- if last < first -%}
        {{ exceptions.raise_compiler_error("max_date " ~ last ~ " is before min_date " ~ first) }}
    {%- endif -%}
    {%- set lookback = var('engagement_windows') | max -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {{ return({
        'min_date': first.isoformat(),
        'max_date': last.isoformat(),
        'as_of_days': (last - first).days + 1,
        'lookback_days': lookback,
        'events_from': (first - one_day * lookback).isoformat(),
        'touches_from': (first - one_day * var('touch_lookback_days')).isoformat(),
        'activity_days': (last - first).days + lookback,
    }) }}
{% endmacro %}

{#- Rows of `n` consecutive dates from `first_date` (ISO), in a column `column`. -#}
{% macro date_series(first_date, n, column) -%}
    select {{ add_days(date_literal(first_date), 'generated_number - 1') }} as {{ column }}
    from ({{ dbt.generate_series(n) }}) as series
{%- endmacro %}

{#- Pre-hook of the daily feature table: a re-run replaces its window's rows (idempotent partitions),
    including rows of clients that are no longer active after a correction of the raw data. -#}
{% macro delete_feature_window() %}
    {%- if is_incremental() -%}
        {%- set w = feature_window() -%}
        delete from {{ this }}
        where as_of_date between {{ date_literal(w.min_date) }} and {{ date_literal(w.max_date) }}
    {%- endif -%}
{% endmacro %}

{#- a / b as a DOUBLE, 0 when b is 0 (a share of nothing is nothing). -#}
{% macro ratio(numerator, denominator) -%}
    case when ({{ denominator }}) > 0 then cast(({{ numerator }}) as double) / ({{ denominator }}) else 0.0 end
{%- endmacro %}
