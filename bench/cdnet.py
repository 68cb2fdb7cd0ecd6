"""Evaluate every motion method on one CDnet-layout folder, in the same run.

Usage: ``python -m bench.cdnet DIR`` where DIR holds input/, groundtruth/, ROI.bmp and
temporalROI.txt (e.g. ../shared/data/cdnet/highway). Prints one line per method::

    METHOD F-measure: 0.xxxx precision: 0.xxxx recall: 0.xxxx

``gateway`` is our detector with its default settings (the same for every video), then OpenCV's
MOG2 and KNN with their defaults, KNN tuned for highway (history 200, dist2Threshold 400, shadows
off), each with a 5x5 median after, and the Frigate-style pipeline. Data and scoring:
changedetection.net (N. Goyette et al., CVPRW 2012; Y. Wang et al., CVPRW 2014).
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
    args = parser.parse_args(argv)
    folder: Path = args.folder
    missing = [n for n in ("input", "groundtruth", "temporalROI.txt") if not (folder / n).exists()]
    if missing:
        print(f"{folder}: not a CDnet-layout folder (missing {', '.join(missing)})", file=sys.stderr)
        return 2
    print(
        f"# {folder.resolve().name}: CDnet scoring (changedetection.net; Goyette et al. 2012, Wang et al. 2014)",
        flush=True,
    )
    counts = evaluate(folder)
    for name, c in counts.items():
        ms = 1000.0 * c.seconds / max(1, c.frames)
        print(
            f"{name} F-measure: {c.f_measure:.4f} precision: {c.precision:.4f} "
            f"recall: {c.recall:.4f}  ({ms:.2f} ms/frame incl. colour conversion)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
