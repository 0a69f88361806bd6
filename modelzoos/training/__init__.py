"""Training: spec -> raw zoo directory. Never imports the builder."""

from .engine import GroupTrainer, evaluate
from .train import train_zoo

__all__ = ["GroupTrainer", "evaluate", "train_zoo"]
