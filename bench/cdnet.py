"""Evaluate every motion method on one CDnet-layout folder, in the same run.

Usage: ``python -m bench.cdnet DIR`` where DIR holds input/, groundtruth/, ROI.bmp and
temporalROI.txt (e.g. ../shared/data/cdnet/highway). Prints one line per method::

    METHOD F-measure: 0.xxxx precision: 0.xxxx recall: 0.xxxx

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
import sys
from pathlib import Path

from bench._cdnet_eval import evaluate


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print one line per method; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench.cdnet", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="CDnet-layout video folder")
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
    if not 0.0 <= args.shade < 1.0:
        parser.error("--shade must be at least 0 and below 1")
    folder: Path = args.folder
    missing = [n for n in ("input", "groundtruth", "temporalROI.txt") if not (folder / n).exists()]
    if missing:
        print(f"{folder}: not a CDnet-layout folder (missing {', '.join(missing)})", file=sys.stderr)
        return 2
    print(
        f"# {folder.resolve().name}: CDnet scoring (changedetection.net; Goyette et al. 2012, Wang et al. 2014)",
        flush=True,
    )
    jitter = (args.jitter, args.seed) if args.jitter else None
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
    counts = evaluate(folder, jitter=jitter, shade=args.shade)
    for name, c in counts.items():
        ms = 1000.0 * c.seconds / max(1, c.frames)
        print(
            f"{name} F-measure: {c.f_measure:.4f} precision: {c.precision:.4f} "
            f"recall: {c.recall:.4f}  ({ms:.2f} ms/frame incl. colour conversion)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
