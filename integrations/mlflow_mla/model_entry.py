"""MLflow "model from code" entry: the file MLflow stores as the model's python_model and runs at
load time (after putting the model's code/ directory on sys.path)."""
from mlflow.models import set_model

from integrations.mlflow_mla.pyfunc import MLADecodeModel

set_model(MLADecodeModel())
