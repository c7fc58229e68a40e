"""MLflow models-from-code entry point of the uplift learners: logged with every uplift run, executed by
`mlflow.pyfunc.load_model`. The models themselves are the pickled artifact; this file only says which
class serves them (no pickled Python object in the model, and no CloudPickle warning when logging)."""

from mlflow.models import set_model

from marketing_ml.uplift.store import UpliftPyfunc

set_model(UpliftPyfunc())
