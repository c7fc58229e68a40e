"""The pipeline domain: a job per demo step and the daily job with its schedule, over every domain's assets."""

import dagster as dg

from marketing_ml.pipeline.daily import daily_job, daily_schedule
from marketing_ml.pipeline.steps import step_jobs


def definitions(domains: dg.Definitions, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    """Jobs over the assets of `domains` (every other domain, merged): a step selects asset groups, the
    daily job every asset partitioned by day."""
    daily = daily_job([a for a in domains.assets or [] if isinstance(a, dg.AssetsDefinition)], partitions)
    return dg.Definitions(jobs=[*step_jobs(), daily], schedules=[daily_schedule(daily)])
