{#- DuckDB builds a join's hash table on the side it estimates smaller. For the year-long feature build it
    underestimates the engagement rows (3.9M estimated, 16.9M real) and builds on them instead of the
    narrow touch windows: a hash table of ~70 columns that spills, about 40% of the build (67 s -> 39 s
    at 50,000 clients x 365 days with the sides as written). Every join of the feature SQL is written
    with its smaller side on the right, so the build keeps them as written, and puts the setting back
    after. Other warehouses plan as they do. -#}
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
