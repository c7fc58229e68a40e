{#- The daily activity counts the engagement features are windowed sums of, with the windows (days before
    the as-of date) each one is summed over. `events` also gets 60 days: the 30 days before the last 30
    are events_60d - events_30d (activity trend). -#}
{% macro engagement_measures() %}
    {%- set windows = var('engagement_windows') -%}
    {%- set longest = [windows | max] -%}
    {%- set measures = [('events', windows + [60])] -%}
    {%- for channel in var('channels') -%}
        {%- do measures.append((channel ~ '_events', windows)) -%}
    {%- endfor -%}
    {%- for event_type in var('event_types') -%}
        {%- do measures.append((event_type, windows)) -%}
    {%- endfor -%}
    {%- do measures.append(('mobile_device_events', longest)) -%}
    {%- do measures.append(('email_open_days', longest)) -%}
    {{ return(measures) }}
{% endmacro %}
