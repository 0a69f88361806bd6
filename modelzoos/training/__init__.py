"""Training: spec -> raw zoo directory. Never imports the builder."""

from .engine import GroupTrainer, Population
from .reference import evaluate, train_alone
from .train import train_zoo

__all__ = ["GroupTrainer", "Population", "evaluate", "train_alone", "train_zoo"]
