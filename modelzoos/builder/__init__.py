"""Builder: raw zoo directory -> `datasets` tables. Never imports training."""

from .layout import Layout, flatten, layout_of, unflatten
from .splits import split_of
from .zoo import ModelZoo, ModelZooConfig

__all__ = ["Layout", "ModelZoo", "ModelZooConfig", "flatten", "layout_of", "split_of", "unflatten"]
