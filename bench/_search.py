"""The automatic search that chooses the ensemble's tunable constants inside each CV fold.

A coordinate search: from the starting configuration, try every listed value of one constant at a
time (the others fixed), keep the value whose configuration scores best on the fold's training
series (each configuration with its own optimal threshold, NAB's optimiser), and go through the
constants again until a whole pass changes nothing (at most ``MAX_PASSES``). Ties keep the current
value. Every configuration is run once over the whole corpus and cached, so the folds and
profiles share the detector runs; what differs between folds is only which series are scored.

The search space is ``SEARCH_SPACE`` below. The constants of ``EnsembleSettings`` that are not in it
are fixed for all folds, each for a reason given in bench/ANOMALY_RESULTS.md ("Constants").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from bench._cv import Chooser, best_on
from bench._nab_score import CostMatrix, SeriesSweep
from edge_config.anomaly import EnsembleSettings

__all__ = ["MAX_PASSES", "SEARCH_SPACE", "coordinate_chooser"]

F64 = npt.NDArray[np.float64]

# Listed values are round numbers spanning about a factor of 2 to 4 around the starting value.
SEARCH_SPACE: dict[str, tuple[float, ...]] = {
    "alarm_z": (2.5, 3.0, 3.5, 4.0),
    "short_span": (3.0, 5.0, 8.0),
    "fast_span": (1.5, 2.0, 3.0),
    "long_span": (500, 1000, 2000),
    "day_min": (5, 10, 20),
    "day_span": (5.0, 10.0, 20.0),
    "recur_decay": (0.9, 0.95, 1.0),
}
MAX_PASSES = 3


def coordinate_chooser(
    sweeps: Sequence[SeriesSweep],
    run: Callable[[EnsembleSettings], list[F64]],
    start: EnsembleSettings,
    space: dict[str, tuple[float, ...]] | None = None,
) -> Chooser:
    """A CV chooser running the coordinate search on each fold's training series.

    ``run(settings)`` scores every series of the corpus with one configuration; results are cached
    by configuration. The returned label lists the chosen value of every searched constant.
    """
    space = SEARCH_SPACE if space is None else space
    cache: dict[tuple[tuple[str, float], ...], list[F64]] = {}

    def scores_of(cfg: dict[str, float]) -> list[F64]:
        key = tuple(sorted(cfg.items()))
        if key not in cache:
            typed = {k: int(v) if isinstance(getattr(start, k), int) else v for k, v in cfg.items()}
            cache[key] = run(EnsembleSettings.model_validate({**start.model_dump(), **typed}))
        return cache[key]

    def choose(train: Sequence[int], cost: CostMatrix) -> tuple[Sequence[F64], float, float, str]:
        current = {name: float(getattr(start, name)) for name in space}
        best_t, best_raw = best_on(sweeps, scores_of(current), train, cost)
        for _ in range(MAX_PASSES):
            changed = False
            for name, values in space.items():
                for value in values:
                    if value == current[name]:
                        continue
                    trial = {**current, name: float(value)}
                    t, r = best_on(sweeps, scores_of(trial), train, cost)
                    if r > best_raw + 1e-9:
                        current, best_t, best_raw, changed = trial, t, r, True
            if not changed:
                break
        return scores_of(current), best_t, best_raw, " ".join(f"{k}={v:g}" for k, v in current.items())

    return choose
