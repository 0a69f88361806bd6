"""modelzoos: regenerate populations of trained neural networks and publish them as HF datasets."""

from .builder.layout import unflatten
from .restore import to_model
from .spec import load_spec

__version__ = "0.1.0"
__all__ = ["load_spec", "to_model", "unflatten", "__version__"]
