{#- Date arithmetic that differs between warehouses, dispatched so feature SQL stays portable. -#}

{% macro date_literal(iso_date) -%}
    cast('{{ iso_date }}' as date)
{%- endmacro %}

{#- `date_expr` plus `days` days, as a DATE. -#}
{% macro add_days(date_expr, days) -%}
    {{ return(adapter.dispatch('add_days', 'marketing_ml')(date_expr, days)) }}
{%- endmacro %}

{% macro default__add_days(date_expr, days) -%}
    cast({{ dbt.dateadd('day', days, date_expr) }} as date)
{%- endmacro %}

{#- DuckDB: DATE + INTEGER is a DATE; dbt.dateadd would go through a TIMESTAMP. -#}
{% macro duckdb__add_days(date_expr, days) -%}
    ({{ date_expr }} + cast({{ days }} as integer))
{%- endmacro %}

{#- Whole days from `start_date` to `end_date` (positive when end is later). -#}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between', 'marketing_ml')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    {{ dbt.datediff(start_date, end_date, 'day') }}
{%- endmacro %}

{#- DuckDB: DATE - DATE is the day count; dbt.datediff would cast both sides to TIMESTAMP. -#}
{% macro duckdb__days_between(start_date, end_date) -%}
    ({{ end_date }} - {{ start_date }})
{%- endmacro %}
