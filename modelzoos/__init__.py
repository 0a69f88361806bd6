"""modelzoos: regenerate populations of trained neural networks and publish them as HF datasets."""

from .builder.layout import unflatten
from .load import load_zoo, weight_matrix
from .restore import to_model
from .spec import load_spec

__version__ = "0.1.0"
__all__ = ["load_spec", "load_zoo", "to_model", "unflatten", "weight_matrix", "__version__"]
