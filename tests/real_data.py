"""Real catalog datasets for tests, decoded once per test process into one shared data dir.

Decoding MNIST from its source files into an empty data dir costs about 3 s of CPU; tests that only need
the catalog's tensors read them from here, so a worker decodes each set once (and the `trustbench` runs
forked from it inherit the loaded arrays). Callers must not change the tensors they get.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from trustbench.data.arrays import ArrayDataset
from trustbench.data.catalog import load


@functools.cache
def data_dir() -> Path:
    """A data dir holding no user files: loads from it read the catalog's sources and its decoded cache."""
    return Path(tempfile.mkdtemp(prefix="trustbench-real-data-"))


def real(name: str) -> ArrayDataset:
    return load(name, data_dir())
