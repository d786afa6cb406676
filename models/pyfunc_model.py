"""MLflow models-from-code entry: the risk model as a pyfunc, with no pickle.

MLflow executes this file when the model is loaded (``mlflow.pyfunc.load_model``,
``mlflow models serve``); the stored artifacts are the text boosters and JSON files
written by :meth:`RiskModel.save`, found under the ``risk_model`` artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

ARTIFACT_KEY = "risk_model"


class RiskPyfunc(PythonModel):
    """Returns a DataFrame with ``p_loss`` and ``p_reject`` for each input row."""

    def load_context(self, context: PythonModelContext) -> None:
        from shiprisk.models.risk_model import RiskModel

        self.model = RiskModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        return self.model.predict_frame(model_input).reset_index(drop=True)


mlflow.models.set_model(RiskPyfunc())
