"""cifar_lab: train, evaluate, explain and use CIFAR-10 classifiers; the core behind the dashboard."""

from .config import PRESETS, TrainConfig, preset
from .preprocess import CLASSES

__version__ = "0.1.0"
__all__ = ["CLASSES", "PRESETS", "TrainConfig", "__version__", "preset"]
