"""Evaluation: revisited-protocol metrics, dataset loaders and the eval runner (the harness;
the benchmarks built on it are in :mod:`imsearch.bench`)."""

from imsearch.evaluate.datasets import Dataset, Query, load_dataset
from imsearch.evaluate.metrics import GroundTruth, MetricResult, evaluate_rankings

__all__ = ["Dataset", "GroundTruth", "MetricResult", "Query", "evaluate_rankings", "load_dataset"]
