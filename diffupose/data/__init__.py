"""Data layer: loaders for Human3.6M, HumanEva-I and the synthetic dataset, all producing the
prepared per-sample format of `diffupose.data.prepared`."""
from .prepare import DATASETS, build_dataset, prepare_dataset, summarize
from .prepared import PreparedData, load_prepared, save_prepared

__all__ = ["PreparedData", "load_prepared", "save_prepared", "prepare_dataset", "build_dataset",
           "summarize", "DATASETS"]
