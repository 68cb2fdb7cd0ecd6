"""Run anomaly detectors over a NAB-layout folder and score them with our NAB v1.1 scorer.

    python -m bench.nab DIR [--out RESULTS] [--detector NAME ...] [--cv [--holdout NAB]] [--verbose]

DIR holds ``data/<category>/<file>.csv`` (``timestamp,value``) and ``labels/combined_windows.json``.
Writes ``RESULTS/<detector>/<category>/<detector>_<file>.csv`` (``timestamp,value,anomaly_score``,
NAB's results layout) and prints, per detector::

    DETECTOR standard: S  reward_low_FP: F  reward_low_FN: N  points/s: P

Every detector runs with ONE configuration (its defaults) over every series: no per-file tuning.
points/s is the batch throughput of the detector on one core (one thread): scoring only, after
JIT compilation, the whole corpus, fastest of three passes.

With ``--cv``: leave-one-category-out cross-validation (bench/_cv.py) of our detectors and of the
published detectors whose result files are in ``DIR/results`` (bench/_published.py), through the
same protocol in the same run. Every threshold (per fold and profile), and every constant of the
ensemble listed in bench/_search.py (per fold, one configuration for the three profiles), is chosen
on the other categories only. Prints one table (one line per
detector, cross-validated and in-sample scores), the choices of every fold with ``--verbose``,
a line per published detector with the ensemble's margin over it and that margin's 90% paired
bootstrap interval (bench/_cv.py ``margin_interval``: how much the margin moves with which series
the corpus happens to hold), and a last line::

    cv_standard: A cv_low_fp: B cv_low_fn: C best_published_cv: D E F points/s: P

With ``--holdout NAB`` (a NAB-layout folder such as a checkout of github.com/numenta/NAB), the
series there that are not in DIR are scored too, with the configuration and thresholds the full
protocol chose on DIR, beside the published detectors' result files there at the thresholds
NAB's optimiser chooses for them on DIR: series on which no constant of any detector here was
set by this project.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from anomaly import make_detector
from bench._cv import ProfileCV, cross_validate, grid_chooser, margin_interval, raw_at_threshold
from bench._field import FieldSeries, field_corpus
from bench._nab_score import (
    PROFILES,
    LabelledSeries,
    ProfileResult,
    SeriesSweep,
    load_corpus,
    score_corpus,
    sweep_series,
)
from bench._published import load_published
from bench._search import GridSearch
from edge_config.anomaly import AnomalySettings, EnsembleSettings

__all__ = ["DETECTORS", "main", "run_detector"]

F64 = npt.NDArray[np.float64]

DETECTORS: dict[str, AnomalySettings] = {
    "ensemble": AnomalySettings(detector="ensemble"),
    "windowed_gaussian": AnomalySettings(detector="windowed_gaussian"),
}


def _seconds(stamps: npt.NDArray[np.datetime64]) -> F64:
    return stamps.astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6


def run_detector(settings: AnomalySettings, corpus: list[LabelledSeries], repeats: int = 3) -> tuple[list[F64], float]:
    """Score every series with a fresh detector; returns the scores and points per second.

    The corpus is scored ``repeats`` times (identical results) and the fastest pass is timed, so
    a busy shared machine disturbs the throughput figure less.
    """
    warm = make_detector(settings)  # compile (or load the cached kernels) outside the timing
    warm.score_batch(np.zeros(4), np.zeros(4))
    times = [_seconds(series.timestamps) for series in corpus]
    points = sum(len(series.values) for series in corpus)
    scores: list[F64] = []
    best = float("inf")
    for _ in range(max(1, repeats)):
        elapsed = 0.0
        scores = []
        for series, stamps in zip(corpus, times, strict=True):
            det = make_detector(settings)
            start = time.perf_counter()
            out = det.score_batch(series.values, stamps)
            elapsed += time.perf_counter() - start
            scores.append(out)
        best = min(best, elapsed)
    return scores, points / best if best > 0 else float("inf")


def write_results(out_dir: Path, detector: str, series: LabelledSeries, scores: F64) -> None:
    """Write one NAB results file."""
    category, file_name = series.name.split("/", 1)
    path = out_dir / detector / category / f"{detector}_{file_name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamps = np.datetime_as_string(series.timestamps, unit="s")
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("timestamp,value,anomaly_score\n")
        for ts, value, score in zip(stamps, series.values.tolist(), scores.tolist(), strict=True):
            fh.write(f"{str(ts).replace('T', ' ')},{value!r},{score!r}\n")


def format_line(detector: str, results: dict[str, ProfileResult], points_per_s: float) -> str:
    """The one-line summary other tools parse."""
    return (
        f"{detector} standard: {results['standard'].normalised:.2f}  "
        f"reward_low_FP: {results['reward_low_FP_rate'].normalised:.2f}  "
        f"reward_low_FN: {results['reward_low_FN_rate'].normalised:.2f}  "
        f"points/s: {points_per_s:.0f}"
    )


def _fmt(values: list[float]) -> str:
    return "  ".join(f"{v:6.2f}" for v in values)


def _cv_row(name: str, cv: dict[str, ProfileCV], insample: dict[str, ProfileResult], note: str = "") -> str:
    cvs = [cv[p].normalised for p in PROFILES]
    ins = [insample[p].normalised for p in PROFILES]
    return f"{name:<26} {_fmt(cvs)}   | {_fmt(ins)}  {note}".rstrip()


def _normalised_at(sweeps: list[SeriesSweep], scores: list[F64], thresholds: dict[str, float]) -> list[float]:
    out = []
    n_windows = sum(sw.n_windows for sw in sweeps)
    for p, cost in PROFILES.items():
        raw = raw_at_threshold(sweeps, scores, cost, thresholds[p])[0]
        out.append(100.0 * (raw + cost.fn * n_windows) / ((cost.tp + cost.fn) * n_windows))
    return out


def _stuck_alarms(field: list[FieldSeries], scores: list[F64], threshold: float) -> tuple[int, int]:
    inside = after = 0
    for f, x in zip(field, scores, strict=True):
        for a, b in f.stuck_spans:
            inside += int(np.count_nonzero(x[a:b] >= threshold))
            after += int(np.count_nonzero(x[b : b + 50] >= threshold))
    return inside, after


def _score_holdout(
    root: Path,
    known: set[str],
    ours: dict[str, dict[str, tuple[AnomalySettings, float]]],
    published_at: dict[str, dict[str, float]],
) -> None:
    """Score the series of ``root`` not in ``known`` with the configurations and thresholds chosen on those.

    ``ours``: per detector and profile, the configuration and threshold; ``published_at``: per
    published detector and profile, the threshold (their result files are read from ``root``).
    """
    corpus = [s for s in load_corpus(root) if s.name not in known]
    sweeps = [sweep_series(s.timestamps, s.windows) for s in corpus]
    print(
        f"# held-out NAB series ({root}, not in the scored folder): {len(corpus)} series, "
        f"{sum(len(s.values) for s in corpus)} points, {sum(sw.n_windows for sw in sweeps)} windows, "
        f"categories {', '.join(sorted({s.name.split('/', 1)[0] for s in corpus}))}; every configuration "
        "and threshold chosen on the scored folder"
    )
    print(f"{'detector':<26} {'held-out standard / low_FP / low_FN':<28} | optimal thresholds on them (in-sample)")
    runs = {
        name: {p: run_detector(cfg, corpus, repeats=1)[0] for p, (cfg, _) in per.items()} for name, per in ours.items()
    }
    thresholds = {name: {p: t for p, (_, t) in per.items()} for name, per in ours.items()}
    for label, scores in load_published(root, corpus).items():
        runs[label] = dict.fromkeys(PROFILES, scores)
        thresholds[label] = published_at[label]
    for det, per_profile in runs.items():
        at = [
            _normalised_at(sweeps, per_profile[p], {q: thresholds[det][p] for q in PROFILES})[i]
            for i, p in enumerate(PROFILES)
        ]
        best = [score_corpus(sweeps, per_profile[p], {p: PROFILES[p]})[p].normalised for p in PROFILES]
        print(f"{'held-out ' + det:<26} {_fmt(at)}   | {_fmt(best)}", flush=True)


def run_cv(
    corpus: list[LabelledSeries],
    sweeps: list[SeriesSweep],
    root: Path,
    names: list[str],
    *,
    verbose: bool = False,
    field_seed: int = 14,
    field_per_kind: int = 4,
    holdout: Path | None = None,
) -> int:
    """The cross-validated comparison, then the field set; prints the tables and the summary line."""
    categories = [s.name.split("/", 1)[0] for s in corpus]
    print(f"# leave-one-category-out CV over {len(set(categories))} categories, chosen on the other categories")
    print("# only: thresholds per fold and profile, the ensemble's searched constants per fold (standard profile)")
    print(f"{'detector':<26} {'cv standard / low_FP / low_FN':<28} | in-sample standard / low_FP / low_FN")
    ours: dict[str, dict[str, ProfileCV]] = {}
    folds: dict[str, dict[str, ProfileCV]] = {}
    # What the full protocol chooses on all series: the configuration and threshold per profile
    # a user gets; the field set is scored with exactly that.
    chosen: dict[str, dict[str, tuple[AnomalySettings, float]]] = {}
    pps_default = 0.0
    everything = list(range(len(corpus)))
    for name in names:
        settings = DETECTORS[name]
        scores, pps = run_detector(settings, corpus)
        insample = score_corpus(sweeps, scores)
        if name == "ensemble":
            pps_default = pps

            def run(cfg: EnsembleSettings) -> list[F64]:
                return run_detector(AnomalySettings(detector="ensemble", ensemble=cfg), corpus, repeats=1)[0]

            search = GridSearch(sweeps, run, settings.ensemble)
            cv = cross_validate(categories, sweeps, search)
            print(_cv_row(name + " (ours)", cv, insample, f"points/s: {pps:.0f}"), flush=True)
            chosen[name] = {}
            for p, cost in PROFILES.items():
                _, t, raw, label = search(everything, cost)
                chosen[name][p] = (AnomalySettings(detector="ensemble", ensemble=search.last), t)
                print(f"#   full protocol on all series, {p}: threshold {t:.6f} raw {raw:.3f} {label}")
        else:
            choose = grid_chooser(sweeps, [scores])
            cv = cross_validate(categories, sweeps, choose)
            print(_cv_row(name + " (ours)", cv, insample, f"points/s: {pps:.0f}"), flush=True)
            chosen[name] = {p: (settings, choose(everything, cost)[1]) for p, cost in PROFILES.items()}
        ours[name] = cv
        folds[name] = cv
    published: dict[str, dict[str, ProfileCV]] = {}
    published_at: dict[str, dict[str, float]] = {}  # NAB's optimal threshold on all series, per profile
    for label, scores in load_published(root, corpus).items():
        choose = grid_chooser(sweeps, [scores])
        cv = cross_validate(categories, sweeps, choose)
        published_at[label] = {p: choose(everything, cost)[1] for p, cost in PROFILES.items()}
        published[label] = cv
        folds[label] = cv
        print(_cv_row(label + " (published)", cv, score_corpus(sweeps, scores)), flush=True)
    if "ensemble" in ours and published:
        print(
            "# margin of ensemble over each published detector, standard / low_FP / low_FN, with its 90% paired "
            "bootstrap interval over the series (within categories, 2000 resamples, the folds' choices held fixed)"
        )
        for label, cv in published.items():
            parts = []
            for p, cost in PROFILES.items():
                margin, low, high = margin_interval(ours["ensemble"][p], cv[p], categories, sweeps, cost)
                parts.append(f"{margin:+.2f} [{low:+.2f}, {high:+.2f}]")
            print(f"{'margin over ' + label:<26} {' / '.join(parts)}", flush=True)
    if verbose:
        for det, cv in folds.items():
            for p, res in cv.items():
                for f in res.folds:
                    print(
                        f"#   {det} {p} held out {f.held_out}: threshold {f.threshold:.6f} train raw "
                        f"{f.train_raw:.3f} held-out raw {f.raw:.3f} tp {f.tp} fp {f.fp} fn {f.fn} {f.choice}"
                    )
    field = field_corpus(seed=field_seed, per_kind=field_per_kind)
    f_corpus = [f.series for f in field]
    f_sweeps = [sweep_series(s.timestamps, s.windows) for s in f_corpus]
    print(
        f"# field set (bench/_field.py, seed {field_seed}): {len(field)} generated series, "
        f"{sum(len(s.values) for s in f_corpus)} points, {sum(sw.n_windows for sw in f_sweeps)} windows, "
        f"{sum(len(f.stuck_spans) for f in field)} stuck periods; scored with the configuration and "
        "thresholds the full protocol chose on NAB (the published detectors' code is not here: they cannot run)"
    )
    print(f"{'detector':<26} {'field standard / low_FP / low_FN':<28} | field-optimal thresholds (in-sample)")
    for name in names:
        per_profile = {p: run_detector(chosen[name][p][0], f_corpus, repeats=1)[0] for p in PROFILES}
        at = [
            _normalised_at(f_sweeps, per_profile[p], {q: chosen[name][p][1] for q in PROFILES})[i]
            for i, p in enumerate(PROFILES)
        ]
        best = [score_corpus(f_sweeps, per_profile[p], {p: PROFILES[p]})[p].normalised for p in PROFILES]
        inside, after = _stuck_alarms(field, per_profile["standard"], chosen[name]["standard"][1])
        note = f"alarms in stuck periods: {inside} (+{after} in the 50 rows after)"
        print(f"{'field ' + name:<26} {_fmt(at)}   | {_fmt(best)}  {note}", flush=True)
    if holdout is not None:
        _score_holdout(holdout, {s.name for s in corpus}, {n: chosen[n] for n in names}, published_at)
    if "ensemble" not in ours:
        return 0
    mine = [ours["ensemble"][p].normalised for p in PROFILES]
    best_pub = [max((cv[p].normalised for cv in published.values()), default=float("nan")) for p in PROFILES]
    print(
        f"cv_standard: {mine[0]:.2f} cv_low_fp: {mine[1]:.2f} cv_low_fn: {mine[2]:.2f} "
        f"best_published_cv: {best_pub[0]:.2f} {best_pub[1]:.2f} {best_pub[2]:.2f} points/s: {pps_default:.0f}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bench.nab", description=__doc__.split("\n")[0])
    parser.add_argument("dir", type=Path, help="NAB-layout folder (data/, labels/)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        help="results folder (default bench/results)",
    )
    parser.add_argument(
        "--detector",
        action="append",
        choices=sorted(DETECTORS),
        help="detector to run (repeatable; default: all)",
    )
    parser.add_argument("--verbose", action="store_true", help="also print thresholds and counts")
    parser.add_argument("--field-seed", type=int, default=14, help="seed of the generated field set (with --cv)")
    parser.add_argument(
        "--field-per-kind", type=int, default=4, help="generated field series of each kind (with --cv; default 4)"
    )
    parser.add_argument(
        "--cv",
        action="store_true",
        help="leave-one-category-out cross-validation beside the published detectors in DIR/results",
    )
    parser.add_argument(
        "--holdout",
        type=Path,
        help="with --cv: a NAB-layout folder whose series not in DIR are scored with what DIR chose",
    )
    args = parser.parse_args(argv)
    try:
        corpus = load_corpus(args.dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not corpus:
        print(f"error: {args.dir}/data holds no <category>/*.csv series", file=sys.stderr)
        return 2
    sweeps = [sweep_series(s.timestamps, s.windows) for s in corpus]
    n_points = sum(len(s.values) for s in corpus)
    n_windows = sum(sw.n_windows for sw in sweeps)
    print(f"# {len(corpus)} series, {n_points} points, {n_windows} scored windows, from {args.dir}")
    if args.cv:
        names = args.detector or list(DETECTORS)
        return run_cv(
            corpus,
            sweeps,
            args.dir,
            names,
            verbose=args.verbose,
            field_seed=args.field_seed,
            field_per_kind=args.field_per_kind,
            holdout=args.holdout,
        )
    for name in args.detector or list(DETECTORS):
        scores, pps = run_detector(DETECTORS[name], corpus)
        for series, out in zip(corpus, scores, strict=True):
            write_results(args.out, name, series, out)
        results = score_corpus(sweeps, scores)
        print(format_line(name, results, pps), flush=True)
        if args.verbose:
            for r in results.values():
                print(f"#   {r.profile}: threshold {r.threshold:.6f} raw {r.raw:.3f} tp {r.tp} fn {r.fn} fp {r.fp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
