"""Model training: point-in-time training sets, four model families per task, honest evaluation against
the simulator's oracle, MLflow logging and champion promotion.

The logic lives in plain modules (`datasets`, `families`, `tasks`, `evaluation`, `registry`, `predictor`);
`assets.py` wires them into Dagster.
"""

import os

# XGBoost and PyTorch parallelise with OpenMP, whose worker threads spin while they wait for each other.
# When another process holds a core (a parallel test, the Dagster webserver) a spinning thread starves
# the one doing the work: measured here, 2 threads under contention were 5x (XGBoost) to 30x (PyTorch)
# slower than 1. Passive waiting removes that collapse. It must be set before the OpenMP runtime loads,
# i.e. before torch or xgboost is first imported, which is why it is here and not in `families`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MLflow draws a progress bar for every artifact download; in Dagster's logs that is noise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
