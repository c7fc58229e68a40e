"""The real-time scoring API (FastAPI): champion scores, next best action and reasons for a client.

Routes under /v1 need an API key in the `X-API-Key` header (401 without one, 403 with a wrong one);
/healthz, /readyz and /metrics are open for probes and scrapers, and the server binds to 127.0.0.1
unless told otherwise. Responses carry ids, scores and feature names only, never personal data, and no
SQL is ever built from a request: clients are looked up in memory (`ServingRuntime`).

Every route is `async def` on purpose: its work is well under a millisecond of CPU without I/O (the
warehouse and the registry are read by the runtime's thread), which costs less on the event loop than a
hop to the thread pool and back.
"""

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, create_model

from marketing_ml.registry.tasks import NBA, OUTCOME_TASKS
from marketing_ml.serving.metrics import CONTENT_TYPE, MetricsMiddleware, RequestMetrics, gauge
from marketing_ml.serving.models import ChampionSet, ScoredRows
from marketing_ml.serving.runtime import ServingRuntime, ServingState

API_KEY_HEADER = "X-API-Key"
ENV_API_KEYS = "MARKETING_ML_API_KEYS"
# generous bounds on numeric inputs: far outside any real feature, well inside float32 (what models compute in)
NUMERIC_BOUND = 1e15
MAX_CATEGORY_LENGTH = 100
MAX_QUEUE_LIMIT = 500
# a client id in a path: canonical decimal of at most 19 digits where clients are keyed by integers (non-
# negative 64-bit), else what a provider's string ids are made of (UUIDs included), up to 128 characters
INTEGER_ID_PATTERN = r"^(0|[1-9][0-9]{0,18})$"
STRING_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ApiKeys:
    """The accepted keys, kept as SHA-256 digests and compared in constant time.

    Digests make every comparison the same length (so timing says nothing about a key's length), and
    every configured key is compared on every call (no early exit on a match)."""

    def __init__(self, keys: Iterable[str]):
        self._digests = [self._digest(k.strip()) for k in keys if k.strip()]
        if not self._digests:
            raise ValueError(f"no API keys configured: set {ENV_API_KEYS} to one or more comma-separated keys")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "ApiKeys":
        return cls(environ.get(ENV_API_KEYS, "").split(","))

    @staticmethod
    def _digest(key: str) -> bytes:
        return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()

    def accepts(self, presented: str) -> bool:
        digest = self._digest(presented)
        return any([hmac.compare_digest(digest, known) for known in self._digests])


# ---- response and request models -------------------------------------------------------------------


class Problem(BaseModel):
    detail: str = Field(description="What went wrong and, where it helps, what to do.")


class ModelRef(BaseModel):
    task: str
    alias: str = Field(description="The registry alias the service follows, e.g. champion.")
    version: str = Field(description="Registered model version that produced the score.")
    family: str = Field(description="Model family: logreg, random_forest, xgboost or torch_mlp.")
    run_id: str | None = Field(description="MLflow run that trained it (lineage).")


class Reason(BaseModel):
    feature: str = Field(description="Feature name from the feature catalog.")
    description: str = Field(description="What the feature measures, from the feature catalog.")
    contribution: float = Field(description="How much the feature raised the model's raw score "
                                "(see contribution_unit).")


class OutcomeScore(BaseModel):
    probability: float = Field(ge=0, le=1, description="P(outcome within horizon_days of the features' as-of date).")
    horizon_days: int
    reasons: list[Reason] = Field(description="Up to three features that raised this score most (exact attributions).")
    contribution_unit: Literal["log-odds", "probability"]
    model: ModelRef


class NextBestAction(BaseModel):
    recommended_action: str = Field(description="The action with the highest response probability "
                                    "(no_contact included).")
    scores: dict[str, float] = Field(description="P(response | client, action) for every action.")
    model: ModelRef


class ClientScores(BaseModel):
    client_id: int | str | None = Field(description="The client scored, as the store keys it (null for an "
                                        "anonymous payload).")
    conversion: OutcomeScore
    churn: OutcomeScore
    next_best_action: NextBestAction
    features_as_of: dt.date | None = Field(
        description="As-of date of the features (they use data strictly before it); null for a payload.")
    features_updated_at: dt.datetime | None = Field(
        description="When the stored feature row was written (UTC); null for a payload.")


class AdvisorQueueEntry(BaseModel):
    rank: int
    client_id: int | str
    expected_value: float = Field(description="Expected incremental annual advisory revenue of the call minus its "
                                  "cost (USD); P(conversion) x revenue while no uplift model is promoted.")
    p_conversion: float
    reasons: list[str] = Field(description="Features that make the call more effective for this client than usual.")


class AdvisorQueueResponse(BaseModel):
    advisor_id: int
    as_of_date: dt.date | None
    entries: list[AdvisorQueueEntry]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    detail: str = ""
    models: dict[str, ModelRef] = {}
    online_clients: int = 0
    features_updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class FeatureField:
    """One input of `POST /v1/score`: a feature column, its kind and what it means."""

    name: str
    kind: Literal["numeric", "boolean", "categorical"]
    description: str = ""


def feature_payload_model(fields: Sequence[FeatureField]) -> type[BaseModel]:
    """A pydantic model with one required, typed field per feature; unknown fields are rejected (a typo in a
    feature name should fail loudly, not be scored as a default). Strict: `false` is not a number, `1` not
    a boolean and `"3"` neither, as the published schema says."""
    types: dict[str, Any] = {
        "numeric": Annotated[float, Field(ge=-NUMERIC_BOUND, le=NUMERIC_BOUND, allow_inf_nan=False)],
        "boolean": bool,
        "categorical": Annotated[str, Field(min_length=1, max_length=MAX_CATEGORY_LENGTH)],
    }
    definitions = {f.name: (types[f.kind], Field(description=f.description or None)) for f in fields}
    return create_model("FeaturePayload", __config__=ConfigDict(extra="forbid", strict=True), **definitions)


# ---- the app ---------------------------------------------------------------------------------------

PROBLEMS = {
    401: {"model": Problem, "description": "No API key"},
    403: {"model": Problem, "description": "Wrong API key"},
    503: {"model": Problem, "description": "Not ready: models or features not loaded yet"},
}


def native_id(value: Any) -> int | str:
    """A client id from a warehouse frame as JSON writes it: an integer, or the provider's string id."""
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


def _model_ref(champions: ChampionSet, task: str) -> ModelRef:
    loaded = champions.loaded[task]
    return ModelRef(task=task, alias=loaded.alias, version=loaded.version, family=loaded.predictor.family,
                    run_id=loaded.run_id)


def _client_scores(state: ServingState, scored: ScoredRows, client_id: int | str | None, as_of: dt.date | None,
                   updated_at: dt.datetime | None, descriptions: Mapping[str, str]) -> ClientScores:
    champions = state.champions
    outcomes = {}
    for task in OUTCOME_TASKS:
        result = scored.outcomes[task]
        outcomes[task] = OutcomeScore(
            probability=float(result.probability[0]),
            horizon_days=champions.loaded[task].predictor.horizon_days,
            reasons=[Reason(feature=r.feature, description=descriptions.get(r.feature, ""),
                            contribution=r.contribution) for r in result.reasons[0]],
            contribution_unit=result.contribution_unit,
            model=_model_ref(champions, task),
        )
    actions = champions.actions
    return ClientScores(
        client_id=client_id,
        conversion=outcomes["conversion"],
        churn=outcomes["churn"],
        next_best_action=NextBestAction(
            recommended_action=actions[int(scored.actions.recommended[0])],
            scores={a: float(s) for a, s in zip(actions, scored.actions.scores[0])},
            model=_model_ref(champions, NBA),
        ),
        features_as_of=as_of,
        features_updated_at=updated_at,
    )


def _finite(scored: ScoredRows) -> bool:
    values = [scored.actions.scores] + [o.probability for o in scored.outcomes.values()]
    values += [np.array([r.contribution for r in rs]) for o in scored.outcomes.values() for rs in o.reasons]
    return all(np.isfinite(v).all() for v in values)


def _utc(stamp: dt.datetime | None) -> dt.datetime | None:
    """`updated_at` is stored as naive UTC; say so in the response (RFC 3339 date-times carry an offset)."""
    return None if stamp is None else stamp.replace(tzinfo=dt.UTC)


def create_app(runtime: ServingRuntime, api_keys: ApiKeys, feature_fields: Sequence[FeatureField],
               integer_client_ids: bool = True) -> FastAPI:
    """The API over a runtime; the app's lifespan starts and stops the runtime's refresh thread (a
    TestClient used without `with` leaves it off, and the test drives the refreshes). Client ids in paths
    are integers, or strings where the provider's ids are (`integer_client_ids=False`)."""
    metrics = RequestMetrics()

    @asynccontextmanager
    async def refreshing(app: FastAPI):
        runtime.start()
        yield
        runtime.stop()

    app = FastAPI(
        lifespan=refreshing,
        title="marketing_ml real-time scoring API",
        version="1",
        description="Conversion, churn and next-best-action scores for 401(k) plan participants, from the "
        "MLflow @champion models and the online feature store. /v1 routes need an API key in the "
        f"`{API_KEY_HEADER}` header.",
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def field_errors(request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each offending input, which fails to serialise for NaN (a 500) and can be
        # large: answer with where and why only
        detail = [{k: v for k, v in e.items() if k != "input"} for e in error.errors()]
        return JSONResponse(jsonable_encoder({"detail": detail}), status_code=422)

    app.state.runtime = runtime

    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description=f"An API key from {ENV_API_KEYS}.")

    async def require_api_key(key: Annotated[str | None, Security(key_header)]) -> None:
        if not key:
            raise HTTPException(401, f"missing API key: send it in the {API_KEY_HEADER} header",
                                headers={"WWW-Authenticate": "ApiKey"})
        if not api_keys.accepts(key):
            raise HTTPException(403, "invalid API key")

    def ready_state() -> ServingState:
        state = runtime.state
        if state is None:
            raise HTTPException(503, f"not ready: {runtime.problem}")
        return state

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=PROBLEMS)
    id_pattern, id_description = (
        (INTEGER_ID_PATTERN, "The client's id (raw_clients.client_id), in canonical decimal: digits, no sign, no "
         "leading zero.") if integer_client_ids else
        (STRING_ID_PATTERN, "The client's id (raw_clients.client_id) as the provider writes it, e.g. a UUID: "
         "letters, digits, '.', '_', ':' and '-', up to 128 characters."))
    FeaturePayload = feature_payload_model(feature_fields)
    descriptions = {f.name: f.description for f in feature_fields}

    class ScoreRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        client_id: int | str | None = Field(default=None,
                                      description="Optional id to echo back; the payload is scored as given.")
        features: FeaturePayload  # type: ignore[valid-type]

    @v1.get("/clients/{client_id}/scores", response_model=ClientScores,
            responses={404: {"model": Problem, "description": "Client not in the online feature store"}},
            summary="Scores, next best action and reasons for a client in the online store")
    async def client_scores(client_id: Annotated[str, Path(pattern=id_pattern, description=id_description)]):
        # a string with a pattern, not an integer: the schema then says exactly which texts the route takes
        # (an integer schema admits "1e3", "+1" or "01", which the route would parse differently or refuse)
        key = int(client_id) if integer_client_ids else client_id
        state = ready_state()
        features = state.features
        row = features.row(key)
        if row is None:
            raise HTTPException(404, f"client {client_id} is not in the online feature store (not an active client "
                                "at the latest feature date); score a payload with POST /v1/score instead")
        scored = state.champions.score(features.rows.encoded, slice(row, row + 1))
        return _client_scores(state, scored, key, features.rows.as_of_date[row].item(),
                              _utc(features.rows.updated_at[row].item()), descriptions)

    @v1.post("/score", response_model=ClientScores,
             responses={400: {"model": Problem, "description": "Unreadable body (not UTF-8 encoded JSON)"},
                        422: {"description": "Invalid payload: field errors"}},
             summary="Score a feature payload (a client not in the online store)")
    async def score_payload(request: ScoreRequest):
        state = ready_state()
        frame = pd.DataFrame([request.features.model_dump()])
        missing = [c for c in state.champions.feature_columns if c not in frame.columns]
        if missing:  # a champion reads a feature this service's payload schema lacks: restart to pick it up
            raise RequestValidationError([
                {"type": "missing", "loc": ("body", "features", c), "msg": "Field required by the current champion "
                 "model; restart the service to see it in the payload schema"} for c in missing
            ])
        scored = state.champions.score(state.champions.encode(frame), slice(0, 1))
        if not _finite(scored):
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "features"),
                                           "msg": "The values are outside the range the models can score"}])
        return _client_scores(state, scored, request.client_id, None, None, descriptions)

    @v1.get("/advisor-queue", response_model=AdvisorQueueResponse,
            summary="An advisor's queue for the latest day: clients ranked by the expected incremental value of a call")
    async def advisor_queue(advisor_id: Annotated[int, Query(description="The advisor's id.")],
                      limit: Annotated[int, Query(ge=1, le=MAX_QUEUE_LIMIT)] = 20):
        queue = runtime.queue
        if queue is None:
            raise HTTPException(503, runtime.queue_problem)
        rows = queue.entries(advisor_id, limit)
        entries = [
            AdvisorQueueEntry(rank=int(r.rank), client_id=native_id(r.client_id), expected_value=float(r.expected_value),
                              p_conversion=float(r.p_conversion), reasons=list(r.reasons))
            for r in rows.itertuples(index=False)
        ]
        return AdvisorQueueResponse(advisor_id=advisor_id, as_of_date=queue.as_of_date, entries=entries)

    app.include_router(v1)

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}},
             summary="Readiness: champions and online features are loaded")
    async def readyz():
        state = runtime.state
        if state is None:
            return JSONResponse(Readiness(status="not ready", detail=runtime.problem).model_dump(mode="json"), 503)
        return Readiness(
            status="ready",
            models={task: _model_ref(state.champions, task) for task in state.champions.loaded},
            online_clients=len(state.features),
            features_updated_at=_utc(state.features.version.last_updated_at),
        )

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text exposition)")
    async def prometheus_metrics() -> PlainTextResponse:
        return PlainTextResponse("\n".join(metrics.exposition() + _state_metrics(runtime)) + "\n",
                                 media_type=CONTENT_TYPE)

    return app


def _state_metrics(runtime: ServingRuntime) -> list[str]:
    state = runtime.state
    models = [] if state is None else [
        ({"task": task, "alias": m.alias, "version": m.version, "family": m.predictor.family}, 1)
        for task, m in state.champions.loaded.items()
    ]
    updated = state.features.version.last_updated_at if state else None
    stats = runtime.stats
    return [
        *gauge("marketing_ml_model_info", "The registered model version served per task (value is always 1).", models),
        *gauge("marketing_ml_ready", "1 when champions and online features are loaded.",
               [({}, int(state is not None))]),
        *gauge("marketing_ml_online_clients", "Clients in the in-memory online feature store.",
               [({}, len(state.features) if state else 0)]),
        *gauge("marketing_ml_online_features_updated_timestamp_seconds",
               "Newest updated_at of the online feature rows served (Unix time).",
               [({}, pd.Timestamp(updated).timestamp())] if updated is not None else []),
        *gauge("marketing_ml_model_swaps_total", "Champion sets loaded (start-up and alias moves).",
               [({}, stats.model_swaps)], kind="counter"),
        *gauge("marketing_ml_refresh_errors_total", "Failed background refreshes, by kind.",
               [({"kind": k}, n) for k, n in stats.errors.items()], kind="counter"),
    ]
