"""MLflow models-from-code entry point: logged with every model, executed by `mlflow.pyfunc.load_model`.

The model's weights are the pickled `Predictor` artifact; this file only says which class serves it.
"""

from mlflow.models import set_model

from marketing_ml.registry.predictor import PredictorModel

set_model(PredictorModel())
