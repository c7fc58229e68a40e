"""The model contract: what every consumer of a trained model reads, and how a model becomes champion.

Training writes here; scoring, decisions, monitoring, serving and streaming read from here and never
from training:

- `tasks`: the prediction tasks, their horizons and the columns of their training sets;
- `model`, `encoding`: the fitted model classes a logged model's pickle refers to;
- `predictor`: the input/output contract of every registered version, and `load_champion`;
- `attribution`: exact additive feature attributions of every model family;
- `evaluation`, `frames`: metrics beside the oracle and a baseline, and the rows they are computed on;
- `store`, `promotion`: MLflow logging and the gate that moves `@champion`; `assets`: the gate as assets.
"""

import os

# XGBoost and PyTorch parallelise with OpenMP, whose worker threads spin while they wait for each other.
# When another process holds a core (a parallel test, the Dagster webserver) a spinning thread starves
# the one doing the work: measured here, 2 threads under contention were 5x (XGBoost) to 30x (PyTorch)
# slower than 1. Passive waiting removes that collapse. It must be set before the OpenMP runtime loads,
# i.e. before torch or xgboost is first imported: every model import goes through this package.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MLflow draws a progress bar for every artifact download; in Dagster's logs that is noise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
