"""Evaluate every motion method on CDnet-layout folders, in the same run.

Usage: ``python -m bench.cdnet DIR... [--methods a,b]`` where each DIR holds input/,
groundtruth/, ROI.bmp (or ROI.jpg) and temporalROI.txt (e.g. ../shared/data/cdnet/highway); a
DIR that holds no input/ but such folders below it (../shared/data/ucsd) stands for all of them.
Prints, per folder, one line per method::

    METHOD F-measure: 0.xxxx precision: 0.xxxx recall: 0.xxxx  (N ms/frame ...) false_alarm: a miss: m

``false_alarm`` is the fraction of scored frames whose ground truth has no foreground in the ROI
where the method reports a box (a blob of its mask in the ROI of at least the gateway's
``min_box_area``); ``miss`` the fraction of frames with a ground-truth object (at least that
size) where no reported blob touches it. After the last folder, a table of F per sequence and
method, the mean over the sequences of every figure for every method, and last, for scripts::

    mean_F gateway: X best_peer: NAME Y mog2: M sequences: N

(best_peer: the best mean F among the methods that are not the gateway's). A folder that is not
usable says what is wrong on stderr and is left out of the means; the exit status is then 1.
bgslibrary's SuBSENSE, PAWCS, LOBSTER and ViBe (``bgs-*``) run too when pybgs is installed
(``bench/install_peers``); without it a comment line says they are left out.

``gateway`` is our detector with its default settings (the same for every video), then OpenCV's
MOG2 and KNN with their defaults, KNN tuned for highway (history 200, dist2Threshold 400, shadows
off), each with a 5x5 median after, and the Frigate-style pipeline. Data and scoring:
changedetection.net (N. Goyette et al., CVPRW 2012; Y. Wang et al., CVPRW 2014).

``--jitter PX [--seed N]`` is a synthetic stress test of camera shake, not a CDnet result: every
frame, its ground truth and the ROI move together by a seeded smoothed random walk of up to PX
pixels (see :func:`bench._cdnet_eval.jitter_walk`), in memory; the borders the shift exposes are
not scored. The method lines keep their format; a second comment line says that the video was shaken.

``--shade DEPTH`` is another synthetic stress test: a soft band of cloud shade, DEPTH darker in its
middle (0.3 = 30%) and 40% of the width wide, sweeps across the view every 10 s (see
:func:`bench._cdnet_eval.shade_frame`). The ground truth is unchanged: shade is not motion.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

from bench import _bgs
from bench._cdnet_eval import Counts, LayoutError, all_methods, evaluate
from vision import warm_up

_Job = tuple[Path, tuple[int, int] | None, float, tuple[str, ...]]

PEER_EXCLUDE = ("gateway",)  # methods named so are ours, not peers


def _expand(folders: list[Path]) -> list[Path]:
    """Each folder, or the CDnet-layout folders one or two levels below it, sorted."""
    out: list[Path] = []
    for folder in folders:
        if (folder / "input").is_dir() or not folder.is_dir():
            out.append(folder)
            continue
        below = sorted(p.parent for p in folder.glob("*/input") if p.is_dir())
        below += sorted(p.parent for p in folder.glob("*/*/input") if p.is_dir())
        out.extend(below or [folder])
    return out


def _label(folder: Path) -> str:
    r = folder.resolve()
    return f"{r.parent.name}/{r.name}"


def _line(name: str, c: Counts) -> str:
    ms = 1000.0 * c.seconds / max(1, c.frames)
    return (
        f"{name} F-measure: {c.f_measure:.4f} precision: {c.precision:.4f} "
        f"recall: {c.recall:.4f}  ({ms:.2f} ms/frame incl. colour conversion) "
        f"false_alarm: {_rate(c.false_alarm_rate, c.quiet_frames)} miss: {_rate(c.miss_rate, c.object_frames)}"
    )


def _rate(value: float, frames: int) -> str:
    return f"{value:.3f}" if frames else "n/a"


def _mean_rate(pairs: list[tuple[float, int]]) -> str:
    """Mean of the rates of the sequences that had frames to count (n/a if none had)."""
    vals = [v for v, n in pairs if n]
    return f"{sum(vals) / len(vals):.3f}" if vals else "n/a"


def _summary(results: dict[str, dict[str, Counts]]) -> list[str]:
    """The per-sequence F table, the means, and the last line."""
    names: list[str] = []
    for counts in results.values():
        names.extend(n for n in counts if n not in names)
    lines = ["", f"# F-measure per sequence ({len(results)} sequences; changedetection.net scoring)"]
    width = max(len(s) for s in results) + 1
    lines.append("# " + "sequence".ljust(width) + " ".join(f"{n[:12]:>12}" for n in names))
    for seq, counts in results.items():
        cells = " ".join(f"{counts[n].f_measure:12.4f}" if n in counts else f"{'-':>12}" for n in names)
        lines.append("# " + seq.ljust(width) + cells)
    lines.append(
        "# means over the sequences each method ran on (false_alarm and miss: over those with quiet frames, "
        "with object frames)"
    )
    means: dict[str, float] = {}
    for n in names:
        cs = [c[n] for c in results.values() if n in c]
        k = len(cs)
        means[n] = sum(c.f_measure for c in cs) / k
        ms = sum(1000.0 * c.seconds / max(1, c.frames) for c in cs) / k
        lines.append(
            f"mean {n} F: {means[n]:.4f} precision: {sum(c.precision for c in cs) / k:.4f} "
            f"recall: {sum(c.recall for c in cs) / k:.4f} "
            f"false_alarm: {_mean_rate([(c.false_alarm_rate, c.quiet_frames) for c in cs])} "
            f"miss: {_mean_rate([(c.miss_rate, c.object_frames) for c in cs])} ms/frame: {ms:.2f} sequences: {k}"
        )
    peers = {n: v for n, v in means.items() if not n.startswith(PEER_EXCLUDE)}
    best = max(peers, key=lambda n: peers[n]) if peers else "none"
    gw = means.get("gateway", float("nan"))
    mog2 = means.get("mog2", float("nan"))
    lines.append(
        f"mean_F gateway: {gw:.4f} best_peer: {best} {peers.get(best, float('nan')):.4f} "
        f"mog2: {mog2:.4f} sequences: {len(results)}"
    )
    return lines


def _score(job: _Job) -> tuple[dict[str, Counts] | None, str]:
    """One folder's counts for the named methods, or None and what is wrong with the folder."""
    folder, jitter, shade, names = job
    known = all_methods()
    try:
        return evaluate(folder, jitter=jitter, shade=shade, makers={n: known[n] for n in names}), ""
    except LayoutError as exc:
        return None, str(exc)


def _worker_start() -> None:
    cv2.setNumThreads(1)
    warm_up()


def _results(jobs: list[_Job], workers: int) -> Iterator[tuple[dict[str, Counts] | None, str]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_score, jobs)
        return
    # each worker loads the compiled kernels before its first frame is timed, and runs OpenCV on
    # one thread: workers side by side would otherwise fight over its thread pools. Spawned, not
    # forked: a fork copies whatever locks the caller's other threads (a test runner's, OpenCV's
    # pools) held at that instant, and a child waiting on one never wakes.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start) as pool:
        run: Callable[[_Job], tuple[dict[str, Counts] | None, str]] = _score
        yield from pool.map(run, jobs)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print one line per method and folder, then the summary; returns the
    exit status (1 when a folder was not usable)."""
    parser = argparse.ArgumentParser(prog="python -m bench.cdnet", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, nargs="+", help="CDnet-layout video folder(s), or folders of them")
    parser.add_argument(
        "--methods",
        default="",
        metavar="A,B",
        help="only these methods (comma-separated names as printed; default all)",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="folders scored at a time (default 1)")
    parser.add_argument(
        "--jitter",
        type=int,
        default=0,
        metavar="PX",
        help="synthetic stress test: shake frames and ground truth by up to PX pixels (0 = off)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the --jitter random walk (default 7)")
    parser.add_argument(
        "--shade",
        type=float,
        default=0.0,
        metavar="DEPTH",
        help="synthetic stress test: sweep cloud shade DEPTH darker (0.3 = 30%%) across the view (0 = off)",
    )
    args = parser.parse_args(argv)
    if args.jitter < 0:
        parser.error("--jitter must be 0 or more")
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    if not 0.0 <= args.shade < 1.0:
        parser.error("--shade must be at least 0 and below 1")
    known = all_methods()
    wanted = [m for m in args.methods.split(",") if m]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        bgs_hint = "" if _bgs.available() else " (bgs-* need pybgs: bench/install_peers)"
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(known)}{bgs_hint}")
    makers = {n: known[n] for n in wanted} if wanted else known
    if not _bgs.available():
        print(_bgs.MISSING_NOTE, flush=True)
    jitter = (args.jitter, args.seed) if args.jitter else None
    results: dict[str, dict[str, Counts]] = {}
    failed = 0
    folders = []
    for folder in _expand(args.folder):
        missing = [n for n in ("input", "groundtruth", "temporalROI.txt") if not (folder / n).exists()]
        if missing:
            print(f"{folder}: not a CDnet-layout folder (missing {', '.join(missing)})", file=sys.stderr)
            failed += 1
        else:
            folders.append(folder)
    jobs: list[_Job] = [(folder, jitter, args.shade, tuple(makers)) for folder in folders]
    for folder, (counts, error) in zip(folders, _results(jobs, args.jobs), strict=True):
        print(
            f"# {folder.resolve().name}: CDnet scoring (changedetection.net; Goyette et al. 2012, Wang et al. 2014)",
            flush=True,
        )
        if jitter:
            print(
                f"# synthetic stress test, not a CDnet result: frames, ground truth and ROI shaken together by a "
                f"smoothed random walk of up to {args.jitter} px (seed {args.seed}); exposed borders not scored",
                flush=True,
            )
        if args.shade:
            print(
                f"# synthetic stress test, not a CDnet result: cloud shade {args.shade:.0%} darker sweeps across the "
                "view every 10 s; ground truth unchanged",
                flush=True,
            )
        if counts is None:
            print(f"{error}; left out", file=sys.stderr, flush=True)
            failed += 1
            continue
        for name, c in counts.items():
            print(_line(name, c), flush=True)
        results[_label(folder)] = counts
    if len(results) > 1 or failed:
        if not results:
            print("no usable folder", file=sys.stderr)
            return 2
        print("\n".join(_summary(results)))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
