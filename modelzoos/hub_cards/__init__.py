"""Cards: the dataset card and the numbers in it. Reads only built tables and the spec."""

from .card import render_card
from .summary import ZooSummary, summarize

__all__ = ["ZooSummary", "render_card", "summarize"]
