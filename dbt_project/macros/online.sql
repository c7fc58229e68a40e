{#- Streaming rescoring builds features for a few clients only (`online_clients`) and includes the
    streamed events that no raw partition holds yet. Daily builds pass neither, and these macros then
    render exactly what the daily SQL always was. -#}

{% macro online_clients() -%}
    {{ return(var('online_clients', none)) }}
{%- endmacro %}

{#- `and <column> in (...)` for the online clients; nothing for daily builds. -#}
{% macro online_clients_filter(column) -%}
    {%- set clients = online_clients() -%}
    {%- if clients is not none %}
    and {{ column }} in ({{ (clients | map('int') | join(', ')) or 'null' }})
    {%- endif -%}
{%- endmacro %}

{#- The events relation: stg_marketing_events, plus (online) the streamed events it does not hold. -#}
{% macro marketing_events() -%}
    {#- looked up rather than `source()`d: only client_features_online reads it (its `depends_on` comment
        declares the edge), and the daily models' lineage must not claim they read streamed events -#}
    {%- set streamed = none -%}
    {%- if online_clients() is not none and execute -%}
        {%- set streamed = adapter.get_relation(database=target.database, schema='streaming', identifier='streamed_events') -%}
    {%- endif -%}
    {%- if streamed is not none -%}
    (
        select event_id, client_id, event_date, channel, event_type, device
        from {{ ref('stg_marketing_events') }}
        union all
        select event_id, client_id, cast(event_date as date) as event_date, channel, event_type, device
        from {{ streamed }} as streamed
        where not exists (
            select 1 from {{ ref('stg_marketing_events') }} as landed where landed.event_id = streamed.event_id
        )
    ) as events
    {%- else -%}
    {{ ref('stg_marketing_events') }}
    {%- endif -%}
{%- endmacro %}
