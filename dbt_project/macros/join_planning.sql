{#- DuckDB builds a join's hash table on the side it estimates smaller. For the year-long feature build it
    underestimates the engagement rows (3.9M estimated, 16.9M real) and builds on them instead of on the
    narrow touch windows: a hash table of ~70 columns that spills (the dbt model at 50,000 clients x 365
    days: 83.9 s, and 51.3 s with the sides as written, run back to back). Every join of the feature SQL
    has its smaller side on the right, so the build keeps the sides as written and restores the setting
    after. Other warehouses plan as they always do. -#}
{% macro plan_joins_as_written() -%}
    {{ return(adapter.dispatch('plan_joins_as_written')()) }}
{%- endmacro %}

{% macro default__plan_joins_as_written() -%}{%- endmacro %}

{% macro duckdb__plan_joins_as_written() -%}
    set disabled_optimizers = 'build_side_probe_side'
{%- endmacro %}

{% macro restore_join_planning() -%}
    {{ return(adapter.dispatch('restore_join_planning')()) }}
{%- endmacro %}

{% macro default__restore_join_planning() -%}{%- endmacro %}

{% macro duckdb__restore_join_planning() -%}
    reset disabled_optimizers
{%- endmacro %}
