"""Cards: the dataset card, the numbers and the plots in it. Reads only built tables and the spec."""

from .card import render_card
from .plots import Plot, write_plots
from .summary import ZooSummary, summarize

__all__ = ["Plot", "ZooSummary", "render_card", "summarize", "write_plots"]
