"""Models of issue 4: the GTF-Net-style detector and the spatiotemporal forecaster."""

from .detector import Detector
from .forecaster import Forecaster
from .layers import RelationalGraphConv, StackedGraphConv

__all__ = ["Detector", "Forecaster", "RelationalGraphConv", "StackedGraphConv"]
