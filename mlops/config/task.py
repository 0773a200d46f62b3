"""Task detection shared by the stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

MAX_CLASSES_FOR_INT = 20


def infer_task(y: pd.Series, declared: str = "auto") -> str:
    """`classification` or `regression`: declared, or from the target's type and cardinality."""
    import pandas as pd

    if declared != "auto":
        return declared
    if pd.api.types.is_float_dtype(y):
        return "regression"
    if pd.api.types.is_integer_dtype(y) and y.nunique() > MAX_CLASSES_FOR_INT:
        return "regression"
    return "classification"
