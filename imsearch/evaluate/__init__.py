"""Evaluation: revisited-protocol metrics, dataset loaders, the eval runner and grids."""

from imsearch.evaluate.datasets import Dataset, Query, load_dataset
from imsearch.evaluate.metrics import GroundTruth, MetricResult, evaluate_rankings

__all__ = ["Dataset", "GroundTruth", "MetricResult", "Query", "evaluate_rankings", "load_dataset"]
