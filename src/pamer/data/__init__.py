"""Dataset readers: the datasets' own annotation sheets and frame folders -> `DatasetIndex`."""

from __future__ import annotations

from pamer.data.samples import DatasetError, DatasetIndex, Problem, Sample

__all__ = ["DatasetError", "DatasetIndex", "Problem", "Sample"]
