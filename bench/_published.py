"""Published detectors' NAB result files, read for scoring beside ours.

Layout as in NAB: ``DIR/results/<detector>/<category>/<detector>_<file>.csv`` with at least the
columns ``timestamp`` and ``anomaly_score``, one row per row of the data file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench._nab_score import LabelledSeries

__all__ = ["PUBLISHED", "load_published"]

F64 = npt.NDArray[np.float64]

# Folder name in NAB's results -> the name the tables print.
PUBLISHED: dict[str, str] = {"contextOSE": "CAD OSE", "numenta": "HTM", "ARTime": "ARTime"}


def _read_scores(path: Path, rows: int) -> F64:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "anomaly_score" not in reader.fieldnames:
            raise ValueError(f"{path}: no anomaly_score column")
        scores = np.array([float(row["anomaly_score"]) for row in reader], dtype=np.float64)
    if len(scores) != rows:
        raise ValueError(f"{path}: {len(scores)} rows, the data file has {rows}")
    return scores


def load_published(root: Path, corpus: list[LabelledSeries]) -> dict[str, list[F64]]:
    """Scores of every published detector that has a result file for every series of the corpus.

    A detector whose folder is absent is left out; one with a missing or short file is an error.
    """
    found: dict[str, list[F64]] = {}
    for folder, label in PUBLISHED.items():
        base = root / "results" / folder
        if not base.is_dir():
            continue
        scores: list[F64] = []
        for series in corpus:
            category, file_name = series.name.split("/", 1)
            path = base / category / f"{folder}_{file_name}"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (every series needs a result file)")
            scores.append(_read_scores(path, len(series.values)))
        found[label] = scores
    return found
