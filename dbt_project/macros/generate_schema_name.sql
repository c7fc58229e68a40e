{#- Models land in the schema they name (`staging`, `features`), not `<target schema>_<name>`: the warehouse
    layout (raw, ground_truth, staging, features, ...) is the same on DuckDB and Snowflake. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name | trim if custom_schema_name is not none else target.schema }}
{%- endmacro %}
