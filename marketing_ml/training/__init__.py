"""Model training: point-in-time training sets, four model families per task, honest evaluation against
the simulator's oracle, logged to MLflow for the registry (`marketing_ml.registry`) to promote.

The logic lives in plain modules (`datasets`, `families`, `fitting`, `plots`); `assets.py` wires them
into Dagster and `definitions.py` assembles the domain.
"""
