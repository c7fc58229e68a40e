"""The alert webhook as a Dagster resource: where critical monitoring alerts are POSTed as JSON.

The URL comes from `MARKETING_ML_ALERT_WEBHOOK` through a `dg.EnvVar` (webhook URLs often carry a token,
so the UI shows the variable's name, never its value); unset, nothing is sent.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import dagster as dg
import pandas as pd
from pydantic import Field

WEBHOOK_ENV = "MARKETING_ML_ALERT_WEBHOOK"


class AlertWebhook(dg.ConfigurableResource):
    url: str | None = Field(default=None, description=f"Receives critical alerts as JSON ({WEBHOOK_ENV}); unset = off.")
    timeout_seconds: float = Field(default=5.0, description="How long a POST may take before it counts as failed.")

    def post(self, alerts: pd.DataFrame, log: Callable[[str], None]) -> str:
        """POST the alerts as JSON; what happened, for the metadata. A failing webhook is logged, never fatal."""
        if not self.url:
            return "not configured"
        if alerts.empty:
            return "nothing to send"
        records = json.loads(alerts.to_json(orient="records", date_format="iso"))
        body = json.dumps({"source": "marketing_ml", "alerts": records}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"content-type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return f"sent {len(alerts)} alerts (HTTP {response.status})"
        except OSError as error:
            log(f"alert webhook failed: {error}")
            return f"failed: {error}"


def alert_webhook(env: dict[str, str]) -> AlertWebhook:
    return AlertWebhook(url=dg.EnvVar(WEBHOOK_ENV)) if env.get(WEBHOOK_ENV) else AlertWebhook()
