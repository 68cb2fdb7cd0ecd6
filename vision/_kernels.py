"""numba kernels of the vision stage: pure functions over preallocated arrays.

Every kernel is ``@njit(cache=True, nogil=True, fastmath=FASTMATH)``: no objects, no I/O, no
allocation of frame-sized arrays. They release the GIL, so the daemon runs them through
``asyncio.to_thread`` while the event loop keeps serving. Inputs are checked by the typed wrappers
in :mod:`vision._checks` and the public classes, never here.

Map of this file
================

1. Constants: ``FASTMATH`` (the one fastmath setting), the raw-mask values, and the indices of
   the vectors the kernels share: ``P_*`` into the motion parameter vector (``N_PARAMS``
   float64), ``C_*`` into a stream's control vector (``N_CTL``), ``S_*`` into the statistics
   a motion step returns (``N_STATS``), ``T_*`` into :func:`tamper_stats`'s output and
   ``BOX_FIELDS`` for a box row.
2. Typed builders (plain Python, not kernels): :class:`MotionParams` fills the settings part of
   the parameter vector (``to_array``), :func:`reset_control` a stream's control vector; the
   wrappers (:class:`vision.MotionDetector`) build the vectors only through them.
3. Helpers: :func:`compiled` (a kernel's compiled entry point, no per-call dispatch), and the
   intrinsics ``_prefetch`` (``llvm.prefetch``), ``_ptr`` / ``_ptr_at`` (borrowed pointers
   into rows, no reference counts).
4. The motion step, one fused pass per analysis row:
   - :func:`downscale_area` / ``_downscale_row``: f x f area downscale of the luma plane;
   - ``_chroma_rows``: the U and V samples of an analysis row;
   - :func:`background_slope`: the background's slope (the shake tolerance reads it);
   - ``_pixel_test``: the per-pixel test (own background, 8 neighbours' backgrounds, chroma);
   - :func:`motion_step`: downscale, test, learn, shadow and shade, statistics. Reads every
     ``P_*`` a step needs (thresholds, rates, shadow, ``P_EDGE``, ``P_NEIGHBOURS``,
     ``P_LEARN_ROWS``); its state: background, noise, chroma background, foreground count,
     slope, raw mask, last analysis frame (the shadow test reads the last two).
5. Clean-up and boxes: :func:`majority_filter` (``P_RADIUS``), :func:`label_components`
   (:func:`label_runs` then :func:`runs_to_boxes`), :func:`ghost_reset` (``P_GHOSTS``: components
   of revealed background learned at once), :func:`select_boxes` (``P_MIN_AREA``,
   ``P_MAX_BOXES``), :func:`zone_counts`; before the clean-up, :func:`veil_test` (``P_VEIL``:
   smoke or fog over a large part of the view counts half).
6. Tamper: :func:`tamper_stats`, :func:`blurred_edge_correlation`, :func:`plane_spread`
   (no parameter vector; see :mod:`vision._tamper`).
7. Shake compensation: :func:`shift_sample` and :func:`lk_step` (see :mod:`vision._stabilise`).
8. Per-frame control, the whole stage in one call: :func:`frame_control` (derives the per-frame
   entries ``P_FLOOR``, ``P_CHROMA_THR``, ``P_ABSORB_FRAMES``, ``P_ALPHA``, ``P_RELEARN``,
   ``P_REPORT``, ``P_LEARN_ROWS``, ``P_CHROMA_REF`` from the settings entries and ``C_*``),
   :func:`motion_frame` (control, step, clean-up, labelling, selection, feedback) and
   :func:`frame_feedback` (idle level, global change and relearning window, colour level).

Why one file
============

numba's on-disk cache (``cache=True``) is keyed on the source file: each kernel's entry is
stored under the file's path and checked against its modification time, and a kernel that
calls another compiles the callee into itself. Split across modules, a change to one helper
would leave the cached callers in other files stale or force every import to recheck several
files; :func:`motion_frame` inlines most of this file. So every kernel lives here, and
``scripts/bootstrap`` (``edge-gateway warm``) compiles them all once.

Parameter vectors are float64 arrays indexed by the ``P_*`` constants below, so that kernels keep a
short, stable signature; a stream's state between frames is a float64 control vector indexed by
``C_*``. Some helpers are not kernels: :func:`compiled`, which the wrappers use to call a kernel's
compiled specialisation directly; ``_prefetch``, a numba intrinsic for ``llvm.prefetch``; and
``_ptr`` / ``_ptr_at``, intrinsics for borrowed pointers into rows, which hot loops use instead
of row views (see ``_ptr``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba import typeof as _typeof
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "BOX_FIELDS",
    "COLOURED",
    "COLOUR_NARROW",
    "COLOUR_WIDE",
    "C_CHANGED_FOR",
    "C_CHROMA",
    "C_CHROMA_LEVEL",
    "C_CHROMA_SEEN",
    "C_DT",
    "C_FIRST",
    "C_FRAMES",
    "C_GLOBAL",
    "C_IDLE_LEVEL",
    "C_RELEARNING",
    "C_RELEARN_UNTIL",
    "C_RNG",
    "C_T",
    "C_T_LAST",
    "FASTMATH",
    "GLOBAL_EXPLAINED",
    "GLOBAL_HOLD_S",
    "LEARN_EVERY",
    "MAX_RADIUS",
    "N_CTL",
    "N_PARAMS",
    "N_STATS",
    "N_TAMPER_STATS",
    "PER_FRAME_PARAMS",
    "P_ABSORB_ALPHA",
    "P_ABSORB_FRAMES",
    "P_ABSORB_S",
    "P_ALPHA",
    "P_BG_ALPHA",
    "P_BLUR",
    "P_CHROMA_REF",
    "P_CHROMA_SETTING",
    "P_CHROMA_THR",
    "P_EDGE",
    "P_FLOOR",
    "P_FLOOR_GAIN",
    "P_GHOSTS",
    "P_GLOBAL",
    "P_IDLE_ALPHA",
    "P_IDLE_FRACTION",
    "P_LEARN_ROWS",
    "P_MAX_BOXES",
    "P_MIN_AREA",
    "P_MIN_THRESHOLD",
    "P_NEIGHBOURS",
    "P_NOISE_ALPHA",
    "P_RADIUS",
    "P_RELEARN",
    "P_RELEARN_S",
    "P_REPORT",
    "P_SAMPLES",
    "P_SHADE",
    "P_SHADOW_CHROMA",
    "P_SHADOW_HI",
    "P_SHADOW_LO",
    "P_THR_SIGMA",
    "P_VEIL",
    "P_WEAK",
    "RNG_SEED",
    "SAMPLES",
    "SLOPE_EVERY",
    "S_CHROMA",
    "S_CORR",
    "S_FG",
    "S_IDLE_ABSDIFF",
    "S_IDLE_COUNT",
    "S_MASK",
    "T_CORR",
    "T_DETAIL",
    "T_EDGE",
    "T_MEAN",
    "T_REF_DETAIL",
    "T_REF_EDGE",
    "T_STD",
    "MotionParams",
    "background_slope",
    "blurred_edge_correlation",
    "compiled",
    "downscale_area",
    "follow_map",
    "frame_control",
    "frame_feedback",
    "gather_pixels",
    "ghost_reset",
    "label_components",
    "label_runs",
    "lk_step",
    "majority_filter",
    "motion_frame",
    "motion_step",
    "plane_spread",
    "renew_pixels",
    "reset_control",
    "runs_to_boxes",
    "sample_veto",
    "select_boxes",
    "shift_sample",
    "tamper_stats",
    "veil_test",
    "zone_counts",
]

# The one place fastmath is chosen. "contract"/"arcp"-style relaxations keep results within float
# rounding of the NumPy references; no NaN can reach a kernel (inputs are uint8), so "nnan"/"ninf"
# are safe too.
FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"}

# majority_filter: largest window radius (9 x 9)
MAX_RADIUS = 4

# motion_step raw mask values: the clean-up counts foreground twice, shadow and weak once
_RAW_BG = np.uint8(0)
_RAW_WEAK = np.uint8(1)
_RAW_SHADOW = np.uint8(1)
_RAW_FG = np.uint8(2)

# motion_frame refreshes the background slope after every SLOPE_EVERY-th frame, the first included:
# a pass costs about 9 us at 320x180 (a sixth of the step), and the background it describes
# changes over tens of frames
SLOPE_EVERY = 8

# A camera switching to or from its IR mode loses or gains its colour in one frame. Every pixel
# with colour then fails the chroma test while the luma may barely change, so the luma-based
# global-change test can miss it. So a frame is a global change too when the coloured part of the
# view (S_CHROMA) goes from at least COLOUR_WIDE (recent level) to below COLOUR_NARROW, or back.
# CDnet highway stays within 0.32 to 0.44, the demo scene near 0.24; a car entering a grey view
# covers less than COLOUR_WIDE, and over several frames. Like a relit view (GLOBAL_EXPLAINED), a
# switched one keeps its structure: green leaves sweeping in front of a grey chart (SBI Snellen)
# bring and take the colour too, but replace the view (a correlation of 0.37 at the first such
# frame there), and were relearned as switches: no mask for a second, four times in 13 s (each
# window learned leaves into the background, which set up the next).
COLOURED = 6.0  # |U - 128| + |V - 128| above this is colour; monochrome chroma sits within 2 of 128
COLOUR_WIDE = 0.15
COLOUR_NARROW = 0.05
_CHROMA_LEVEL_ALPHA = 0.1
_RELEARN_LEFT = 0.05  # of the old view, left in the background when a relearning window ends

# A frame with more than P_GLOBAL of its pixels in raw foreground is a global change (lights, an IR
# switch: the background relearns) only if the old view still explains more than GLOBAL_EXPLAINED
# of its variance (S_CORR squared): a relit view keeps its structure, while leaves or a person
# right in front of the lens replace it. Lights switched on or off on CDnet highway and on the test
# scenes, even to a twentieth of the light with sensor noise, correlate at 0.80 or more (0.64
# explained); foliage, people behind it and smoke over a chart (SBI2015) at 0.64 or less, and
# those frames were relearned as lights before: no mask for a second each time.
GLOBAL_EXPLAINED = 0.5
# A lighting change the structure test misses would stay motion until absorbed (absorb_after_s).
# So a view with more than P_GLOBAL raw foreground for GLOBAL_HOLD_S without a break is a global
# change whatever its structure: the longest such spell on the shared sequences is 3.2 s (SBI
# Foliage, leaves across the lens, which are its ground truth's foreground).
GLOBAL_HOLD_S = 5.0
_BLOCK = 4  # S_CORR compares BLOCK x BLOCK means: a dark frame's sensor noise averages out

# motion_step prefetches the input rows of analysis row i + _AHEAD while it works on row i
_AHEAD = 2

# frame_control has one row in LEARN_EVERY learn on each frame (in turn), at the rate of that many
# frames, once the per-frame learning rate is at most _ALTERNATE_BELOW: a young model and a
# relearning view learn every row. Not more than 2: at 3 or 4 a row learns three or four frames'
# worth from one frame, and a view shaking by a pixel drags its background far enough toward one
# shaken frame that its edges become motion (test_edge_tolerance_keeps_a_shaking_view_quiet)
LEARN_EVERY = 2
_ALTERNATE_BELOW = 0.1

# sample_veto: a per-pixel set of SAMPLES past values and their texture, as in ViBe and LOBSTER
# (O. Barnich and M. Van Droogenbroeck, IEEE TIP 2011; P.-L. St-Charles and G.-A. Bilodeau, WACV
# 2014). Drawn from the first frame's neighbourhood, it holds a moving background's spread (water,
# leaves) from the first frame on, where the running average needs tens of frames to learn it.
# A foreground pixel whose value lies within _SAMPLE_REACH times its threshold of _SAMPLE_MATCHES
# samples, with the same local texture (at most _SAMPLE_BITS of 16 LBSP bits different), counts
# half in the clean-up: it joins an object next to it but makes none alone. Clean background
# pixels (raw 0, own test passed) replace one of their samples, and one of a random neighbour's,
# one pixel in _SAMPLE_EVERY a frame: a conservative update (a stopped object is never learned)
# with ViBe's diffusion, which wears ghosts away from their outline. In a prototype on the shared
# sequences, 8 samples scored as 16 (mean F 0.4852, 0.4851); reach 2 and 2 bits a little above
# reach 1.5 or 2 bits 3 (0.4830, 0.4827). Memory: 3 bytes a sample a pixel.
# Where the samples themselves spread (standard deviation) by more than _SAMPLE_MOVING times the
# pixel's threshold, the background is known to move there by more than the running background's
# test can hold (water, waves, leaves; sensor noise alone spreads them by about 1.25 times the
# noise, a third of a threshold of 3.5 times it), and a match makes the pixel background, whether
# it was foreground or a weak difference (which would otherwise count half: windows of weak water
# pixels with a few foreground ones among them made objects). Elsewhere a match only demotes
# foreground to weak. 0.7 of a threshold scored 0.001 higher over the shared sequences but took
# office's F down to SuBSENSE's and Snellen's by 0.03 (VISION_RESULTS.md, issue 13 session 9).
# A young model (the first frames of a stream, scored from the first on short clips) updates
# its samples faster, about one pixel in (t + 1) / 2 a row on frame t, from every
# _SAMPLE_EVERY_YOUNG-th (SuBSENSE's shortest update period) to every _SAMPLE_EVERY-th by frame 31:
# the sets drawn from the first frame's neighbourhood take in the pixel's own recent values
# while the running background is still learning at its young rate 1 / (t + 1).
SAMPLES = 8
_SAMPLE_REACH = 2.0
_SAMPLE_BITS = 2
_SAMPLE_MATCHES = 2
_SAMPLE_EVERY = 16
_SAMPLE_EVERY_YOUNG = 2
_SAMPLE_MOVING = 1.0
# LBSP: bit k of a pixel's texture is set when ring pixel k (the 16 on the border of its 5x5
# neighbourhood) differs from it by more than _LBSP_REL of its value plus _LBSP_ABS (LOBSTER's
# relative threshold for grey images; the offset keeps sensor noise on dark flat areas out)
_LBSP_REL = 0.18
_LBSP_ABS = 3.0
_RING_DY = np.array([-2, -2, -2, -2, -2, -1, 0, 1, 2, 2, 2, 2, 2, 1, 0, -1], dtype=np.int64)
_RING_DX = np.array([-2, -1, 0, 1, 2, 2, 2, 2, 2, 1, 0, -1, -2, -2, -2, -2], dtype=np.int64)
_NB_DY = np.array([-1, -1, -1, 0, 0, 1, 1, 1], dtype=np.int64)  # the 8 neighbours, for diffusion
_NB_DX = np.array([-1, 0, 1, -1, 1, -1, 0, 1], dtype=np.int64)
# A first frame's sample k of a pixel comes from an offset of about 1.5 pixels (a Gaussian's 64
# quantiles, rounded: 7x7 at most, LOBSTER's initial spread)
_SPREAD = np.array([round(1.5 * NormalDist().inv_cdf((k + 0.5) / 64)) for k in range(64)], dtype=np.int64)
RNG_SEED = 2463534242  # the random state a stream starts from: runs are reproducible

# ghost_reset: a ghost is background the model holds wrongly, an object learned into it (in the
# first frame, as SBI2015's scenes begin, or absorbed) that has since left. Conservative learning
# never takes it back (only clean background learns), so it stayed foreground until absorbed
# (absorb_after_s, two minutes). Its component of the cleaned mask is revealed background: the
# edges along its outline are the departed object's, in the background and not in the frame,
# and it does not move. A component whose pixels have been foreground for _GHOST_AFTER_S on
# average, of which at most one in _GHOST_STILL changed by more than its threshold since the last
# frame, and whose outline's gradient in the background is more than _GHOST_EDGES times that in the
# frame, is learned at once and leaves the mask. A person who stops keeps their own outline in the
# frame and stays. Gradients span _GHOST_SPAN pixels each way: the cleaned mask's outline lies a
# pixel or two outside the object's edge. On the shared sequences the ghosts read 2.4 to 6 (outline
# gradient, background over frame), a person standing still in front of a shop's racks 2.9 (SBI
# CAVIAR2); at 2 that person was learned (CAVIAR2 0.79 to 0.73). 0.8 s: at half that, a moving
# object's trailing pixels qualify; the stillness test keeps leaves in front of the lens out (SBI
# Foliage 0.87 without it, 0.90 with). No gradient that reaches the frame's outer _GHOST_SPAN + 1
# rows and columns counts: a camera's border carries edges of its own (CAVIAR2's last two columns
# darken from 135 to 115 and 90), and there a ghost reaching the border read 1.1 and stayed in the
# mask for the whole sequence, three fifths of that sequence's false positives. Nor do a
# component's holes: a ghost's evidence is its outer contour, where the departed object ended,
# while a dark coat close to the lens over a bright car (SBI PeopleAndFoliage) has holes where it
# matches the car's dark tyre, the tyre's edges around them in the background and the flat coat
# in the frame; read as outline, they made the coat a ghost and it was learned (0.844 with the
# ghost test off, 0.820 on, 0.864 without the holes).
_GHOST_AFTER_S = 0.8
_GHOST_STILL = 20
_GHOST_EDGES = 3.0
_GHOST_SPAN = 2

# veil_test: smoke, fog or steam drifting over the view (UCSD jump: smoke from the first second
# over the trees, three fifths of the frame in raw foreground) is no object. Where it is dense it
# brightens the view towards its own grey and flattens it: the frame there holds no structure of
# its own, where an object brings its edges and its outline. So a foreground pixel that is
# brighter than its background and flat (every pixel of its LBSP ring, 2 pixels away, within its
# threshold of it) is veil-like, and a connected region of such pixels covering at least
# _VEIL_AREA of the view is a veil: its pixels count half in the clean-up (weak), so that they
# join an object next to them but make none alone, as a weak difference does. Flat brightening
# alone is no evidence: the flat inside of a white car, a pale coat or a bright leaf close to
# the lens is one too, and demoting every such pixel cost those sequences up to 0.15 of their F
# (SBI Board, Foliage, UCSD rain, traffic); on the shared sequences such regions of objects
# cover at most a fifth of the view (SBI Foliage, leaves across the lens: 0.21 at the most,
# 0.17 in its worst one frame in a hundred), the smoke over jump a quarter of it in half its
# frames and up to two fifths.
# Between 0.15 and 0.25 the figures barely moved (VISION_RESULTS.md, issue 13 session 10). A
# region that large of an object in front of the lens still keeps its outline: a flat inside
# is demoted, its edges are not flat and stay foreground, and its box with them.
_VEIL_AREA = 0.2

# motion_step parameter vector
P_THR_SIGMA = 0  # threshold in units of per-pixel noise (mean absolute deviation)
P_FLOOR = 1  # frame-wide floor of the luma threshold
P_CHROMA_THR = 2  # chroma threshold (0 = chroma off)
P_ALPHA = 3  # background learning rate where background
P_NOISE_ALPHA = 4  # noise learning rate
P_ABSORB_FRAMES = 5  # frames of continuous foreground after which a pixel is absorbed
P_ABSORB_ALPHA = 6  # learning rate of absorbed pixels
P_RELEARN = 7  # 1.0: update every pixel (after a global change), ignore foreground
P_SHADOW_LO = 8  # darker pixels with luma ratio in [lo, hi] and matching chroma are shadow
P_SHADOW_HI = 9  # (lo = 0 turns shadow suppression off)
P_SHADOW_CHROMA = 10  # largest chroma deviation, after scaling by the ratio, of a shadow
P_BLUR = 11  # 1.0: 3x3 binomial blur of the analysis frame, 0.0: none
P_WEAK = 12  # pixels with |diff| above this fraction of the threshold count half in the clean-up
P_REPORT = 13  # motion_frame: 1.0 clean up and label the mask, 0.0 only learn (first/relearn)
P_GLOBAL = 14  # motion_frame: raw foreground fraction above which the frame is a global change
P_RADIUS = 15  # motion_frame: majority filter radius
P_MIN_AREA = 16  # motion_frame: smallest component area (analysis pixels) kept as a box
P_MAX_BOXES = 17  # motion_frame: most boxes kept, largest first
# frame_control: settings it derives the per-frame entries above from
P_MIN_THRESHOLD = 18  # smallest luma threshold ever (the floor follows the idle level above it)
P_FLOOR_GAIN = 19  # floor = max(P_MIN_THRESHOLD, gain * idle level)
P_CHROMA_SETTING = 20  # chroma threshold when chroma planes come with the frame
P_ABSORB_S = 21  # seconds of continuous foreground after which a pixel is absorbed
P_BG_ALPHA = 22  # configured background learning rate
P_RELEARN_S = 23  # how long the fast relearning lasts after a global change
P_IDLE_FRACTION = 24  # frames with less raw foreground than this teach the idle level
P_IDLE_ALPHA = 25  # learning rate of the idle level
P_EDGE = 26  # motion_step: threshold added per grey level of background slope (0 = off)
P_CHROMA_REF = 27  # motion_frame: recent frames' coloured fraction (C_CHROMA_LEVEL; < 0 unknown)
P_SHADE = 28  # 1.0: lighter darkening that keeps hue and local contrast is shade too (see motion_step)
P_LEARN_ROWS = 29  # 0: every row learns; k in 1..LEARN_EVERY: rows i with (i + k) % LEARN_EVERY == 0
P_NEIGHBOURS = 30  # motion_step: 1.0: luma foreground also differs from its 8 neighbours' background
P_SAMPLES = 31  # sample_veto: 1.0: foreground that the pixel's sample set explains counts half
P_GHOSTS = 32  # ghost_reset: 1.0: a component of revealed background (a ghost) is learned at once
P_VEIL = 33  # veil_test: 1.0: a large flat brightening (smoke, fog) counts half in the clean-up
N_PARAMS = 34

# motion_frame control vector: a stream's state between frames, float64, indexed by C_*
C_T = 0  # this frame's timestamp (s)
C_CHROMA = 1  # 1.0 when the chroma planes came with this frame
C_FRAMES = 2  # frames analysed since the last reset
C_T_LAST = 3  # the previous frame's timestamp (valid when C_FRAMES > 0)
C_DT = 4  # smoothed frame interval (s)
C_RELEARN_UNTIL = 5  # fast relearning goes on while t is below this
C_IDLE_LEVEL = 6  # mean |diff| of background pixels, learned on idle frames
C_CHROMA_SEEN = 7  # 1.0 once a frame came with chroma (the first one is learned, not tested)
C_FIRST = 8  # out: this frame was learned as a new background
C_RELEARNING = 9  # out: this frame was in a relearning window
C_GLOBAL = 10  # out: this frame was a global change (a relearning window starts)
C_CHROMA_LEVEL = 11  # smoothed S_CHROMA of recent frames with chroma (< 0: none yet)
C_CHANGED_FOR = 12  # seconds the frames have had more than P_GLOBAL raw foreground without a break
C_RNG = 13  # sample_veto's random state (a 32-bit xorshift state, exact in float64)
N_CTL = 14

# motion_step statistics vector
S_FG = 0  # foreground pixels (raw)
S_IDLE_ABSDIFF = 1  # sum of |diff| over background pixels
S_IDLE_COUNT = 2  # number of background pixels
S_MASK = 3  # pixels set in the cleaned mask (motion_frame only)
S_CHROMA = 4  # coloured fraction: of every 8th analysis row, pixels with |U - 128| + |V - 128| > COLOURED
S_CORR = 5  # correlation of the frame's 4x4 block means with the background's (see motion_step)
N_STATS = 6

# label_components output: one row per component
BOX_FIELDS = 7  # x0, y0, x1 (exclusive), y1 (exclusive), area, sum_x, sum_y

# tamper_stats output
T_MEAN = 0
T_STD = 1
T_EDGE = 2  # mean gradient magnitude (|dx| + |dy|) of the frame
T_DETAIL = 3  # mean |Laplacian| of the frame
T_REF_EDGE = 4
T_REF_DETAIL = 5
T_CORR = 6  # Pearson correlation of gradient magnitudes, frame vs reference
N_TAMPER_STATS = 7


# Entries of the parameter vector that frame_control writes on every frame (from the settings
# entries and the control vector); MotionParams leaves them 0.
PER_FRAME_PARAMS = (
    P_FLOOR,
    P_CHROMA_THR,
    P_ALPHA,
    P_ABSORB_FRAMES,
    P_RELEARN,
    P_REPORT,
    P_CHROMA_REF,
    P_LEARN_ROWS,
)


@dataclass(frozen=True, slots=True)
class MotionParams:
    """The settings part of the motion parameter vector, typed: one field per ``P_*`` entry.

    :meth:`to_array` writes them at their indices (``PER_FRAME_PARAMS`` are left to
    :func:`frame_control`). Booleans become 1.0 / 0.0, the kernels' convention.
    """

    threshold_sigma: float  # P_THR_SIGMA
    noise_alpha: float  # P_NOISE_ALPHA
    absorb_alpha: float  # P_ABSORB_ALPHA
    blur: bool  # P_BLUR
    weak: float  # P_WEAK (1e9: weak differences off)
    shadow_lo: float  # P_SHADOW_LO
    shadow_hi: float  # P_SHADOW_HI
    shadow_chroma: float  # P_SHADOW_CHROMA
    shade: bool  # P_SHADE
    global_fraction: float  # P_GLOBAL
    radius: int  # P_RADIUS
    min_area: int  # P_MIN_AREA
    max_boxes: int  # P_MAX_BOXES
    min_threshold: float  # P_MIN_THRESHOLD
    floor_gain: float  # P_FLOOR_GAIN
    chroma_setting: float  # P_CHROMA_SETTING
    absorb_s: float  # P_ABSORB_S
    bg_alpha: float  # P_BG_ALPHA
    relearn_s: float  # P_RELEARN_S
    idle_fraction: float  # P_IDLE_FRACTION
    idle_alpha: float  # P_IDLE_ALPHA
    edge: float  # P_EDGE
    neighbours: bool  # P_NEIGHBOURS
    samples: bool  # P_SAMPLES
    ghosts: bool  # P_GHOSTS
    veil: bool  # P_VEIL

    def to_array(self, out: np.ndarray | None = None) -> np.ndarray:
        """The parameter vector (``N_PARAMS`` float64), written into ``out`` if given (the
        per-frame entries of an existing vector are kept)."""
        p = np.zeros(N_PARAMS, dtype=np.float64) if out is None else out
        if p.shape != (N_PARAMS,) or p.dtype != np.float64:
            msg = f"a motion parameter vector is float64 of shape ({N_PARAMS},), got {p.dtype} {p.shape}"
            raise ValueError(msg)
        p[P_THR_SIGMA] = self.threshold_sigma
        p[P_NOISE_ALPHA] = self.noise_alpha
        p[P_ABSORB_ALPHA] = self.absorb_alpha
        p[P_BLUR] = 1.0 if self.blur else 0.0
        p[P_WEAK] = self.weak
        p[P_SHADOW_LO] = self.shadow_lo
        p[P_SHADOW_HI] = self.shadow_hi
        p[P_SHADOW_CHROMA] = self.shadow_chroma
        p[P_SHADE] = 1.0 if self.shade else 0.0
        p[P_GLOBAL] = self.global_fraction
        p[P_RADIUS] = self.radius
        p[P_MIN_AREA] = self.min_area
        p[P_MAX_BOXES] = self.max_boxes
        p[P_MIN_THRESHOLD] = self.min_threshold
        p[P_FLOOR_GAIN] = self.floor_gain
        p[P_CHROMA_SETTING] = self.chroma_setting
        p[P_ABSORB_S] = self.absorb_s
        p[P_BG_ALPHA] = self.bg_alpha
        p[P_RELEARN_S] = self.relearn_s
        p[P_IDLE_FRACTION] = self.idle_fraction
        p[P_IDLE_ALPHA] = self.idle_alpha
        p[P_EDGE] = self.edge
        p[P_NEIGHBOURS] = 1.0 if self.neighbours else 0.0
        p[P_SAMPLES] = 1.0 if self.samples else 0.0
        p[P_GHOSTS] = 1.0 if self.ghosts else 0.0
        p[P_VEIL] = 1.0 if self.veil else 0.0
        return p


def reset_control(ctl: np.ndarray, dt: float, never: float) -> None:
    """A stream's control vector (``N_CTL`` float64) as before its first frame, in place: frame
    interval ``dt`` assumed until timestamps tell, no relearning window (until ``never``, a
    finite time long past: the kernels assume no infinities), no colour level known."""
    if ctl.shape != (N_CTL,) or ctl.dtype != np.float64:
        msg = f"a control vector is float64 of shape ({N_CTL},), got {ctl.dtype} {ctl.shape}"
        raise ValueError(msg)
    ctl[:] = 0.0
    ctl[C_DT] = dt
    ctl[C_RELEARN_UNTIL] = never
    ctl[C_CHROMA_LEVEL] = -1.0
    ctl[C_RNG] = RNG_SEED


def compiled(kernel: Any, *args: object) -> Callable[..., Any]:
    """The compiled specialisation of ``kernel`` for the types of ``args``, loaded or built now.

    Calling it skips numba's per-call type resolution: about 2 us per frame when the
    interpreter's caches are cold, as they are after other work. It converts arguments by the
    types fixed here and checks none of them, so the caller must pass the same types every time.
    """
    typeof: Any = _typeof  # untyped in numba
    entry: Callable[..., Any] = kernel.compile(tuple(typeof(a) for a in args))
    return entry


def _prefetch_intrinsic(typingctx: Any, ptr: Any, k: Any) -> tuple[Any, Callable[..., Any]] | None:  # pragma: no cover
    """``_prefetch(p, k)`` hints that the cache line of ``p[k]`` (``p`` a pointer, see ``_ptr``) is
    needed soon.

    LLVM's ``llvm.prefetch`` (read, locality 2, data): ``prefetcht1`` on x86, into L2; L1 is too
    small to hold rows fetched ahead next to the working rows. numba has no prefetch of its own;
    the fused loop below uses it to fetch later input rows while it computes on the current one.
    """
    if not (isinstance(ptr, types.CPointer) and isinstance(k, types.Integer)):
        return None
    sig = types.void(ptr, k)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        offset = context.cast(builder, args[1], signature.args[1], types.intp)
        addr = builder.gep(args[0], [offset])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [addr.type, i32, i32, i32])
        fn = _cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [addr, i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


_cgutils: Any = cgutils  # numba's code-generation helpers carry no type hints
_prefetch: Any = intrinsic(_prefetch_intrinsic)


_Typed = tuple[Any, Callable[..., Any]]  # an intrinsic's signature and code generator
_pointer_type: Any = types.CPointer  # untyped in numba


def _pointer_to(context: Any, builder: Any, signature: Any, args: Any) -> Any:  # pragma: no cover
    """Code for _ptr / _ptr_at: the address of ``arr[args[1:]]``, missing trailing indices 0."""
    aryty = signature.args[0]
    if isinstance(aryty, types.CPointer):
        return builder.gep(args[0], [context.cast(builder, args[1], signature.args[1], types.intp)])
    ary = context.make_array(aryty)(context, builder, args[0])
    idx = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:], strict=True)]
    idx += [context.get_constant(types.intp, 0)] * (aryty.ndim - len(idx))
    shapes = _cgutils.unpack_tuple(builder, ary.shape, aryty.ndim)
    strides = _cgutils.unpack_tuple(builder, ary.strides, aryty.ndim)
    return _cgutils.get_item_pointer2(context, builder, ary.data, shapes, strides, aryty.layout, idx)


def _ptr_intrinsic(typingctx: Any, arr: Any, i: Any) -> _Typed | None:  # pragma: no cover
    """``_ptr(arr, i)``: a pointer to row ``i`` of 2-D ``arr``, or to element ``i`` of 1-D ``arr``
    (or of pointer ``arr``).

    Indexed like an array (``p[j]``, also for assignment) but borrowed: it holds no reference.
    numba counts references to every array view it makes, and where its pruning pass cannot pair
    the counts up (it cannot in a kernel as branched as motion_step) each view of a row costs
    two atomic operations: in motion_step they took about a quarter of the time. ``p[j]``
    neither wraps a negative ``j`` nor checks bounds. A pointer must not outlive its array, and
    numba frees an array a function made right after the variable's last use: so take pointers
    where they are used (inside the loop, not before it), which costs only an address.
    """
    if isinstance(arr, types.CPointer) and isinstance(i, types.Integer):
        return arr(arr, i), _pointer_to
    if not (isinstance(arr, types.Array) and arr.ndim in (1, 2) and isinstance(i, types.Integer)):
        return None
    return _pointer_type(arr.dtype)(arr, i), _pointer_to


def _ptr_at_intrinsic(typingctx: Any, arr: Any, i: Any, j: Any) -> _Typed | None:  # pragma: no cover
    """``_ptr_at(arr, i, j)``: a pointer to ``arr[i, j]`` of 2-D ``arr``, as :func:`_ptr`."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(i, types.Integer)):
        return None
    if not isinstance(j, types.Integer):
        return None
    return _pointer_type(arr.dtype)(arr, i, j), _pointer_to


_ptr: Any = intrinsic(_ptr_intrinsic)
_ptr_at: Any = intrinsic(_ptr_at_intrinsic)


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _prefetch_rows(plane: Any, width: int, height: int, r0: int, r1: int) -> None:  # pragma: no cover
    """Prefetch rows ``r0`` to ``r1 - 1`` (clipped to ``height``) of the C-contiguous plane of
    ``width`` bytes a row at pointer ``plane``, one hint per 64 bytes."""
    for r in range(r0, min(r1, height)):
        row = _ptr(plane, r * width)
        for x in range(0, width, 64):
            _prefetch(row, x)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _pair_view(luma: np.ndarray) -> np.ndarray:  # pragma: no cover
    """``luma`` viewed as uint16 byte pairs when its rows allow it (even width and address), else
    a (0, 0) array. One view per frame: a view per row costs about 15 ns each."""
    if (luma.ctypes.data | luma.shape[1]) % 2 == 0:
        return luma.view(np.uint16)
    return np.empty((0, 0), dtype=np.uint16)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _downscale_row(  # pragma: no cover
    luma: Any,
    pairs: Any,
    paired: bool,
    width: int,
    height: int,
    f: int,
    i: int,
    acc: Any,
    acc32: Any,
    out_row: Any,
    w: int,
) -> None:
    """Analysis row ``i``: mean of the f x f blocks of the luma plane into ``out_row`` (``w``
    float32).

    All arrays come as pointers (``_ptr``): array arguments would cost reference counts on
    every call. ``luma`` points to the (``height``, ``width``) uint8 plane and ``pairs`` to the
    same plane as uint16 byte pairs when ``paired`` (not when its rows do not allow that: odd width
    or address; see :func:`_pair_view`). ``acc`` points to a uint16 scratch row of the full input
    width (rounded up to even) and ``acc32`` to the same row as uint32. The f input rows are
    summed down the columns with plain vectorised adds, then across each block.
    """
    # each input row read hints the one _AHEAD analysis rows below: the prefetches spread over
    # the frame instead of coming in bursts that the memory system drops
    if f == 1:
        _prefetch_rows(luma, width, height, i + _AHEAD, i + _AHEAD + 1)
        row = _ptr(luma, i * width)
        for j in range(w):
            out_row[j] = row[j]
        return
    span = w * f
    r0 = i * f
    inv = np.float32(1.0 / (f * f))
    if f % 2 == 0 and paired:
        # even factors, rows at even addresses (the usual 640x360, 720p, 1080p): each row is
        # read as uint16 byte pairs and a pair's two bytes add in 16-bit lanes, so the column
        # sums cover half as many values and the block sums need no byte interleaving (20 to
        # 40% faster than the byte path below)
        half = span // 2
        row_pairs = width // 2
        if f == 2:  # no column sums to keep: both rows at once
            _prefetch_rows(luma, width, height, r0 + 2 * _AHEAD, r0 + 2 * _AHEAD + 2)
            top = _ptr(pairs, r0 * row_pairs)
            bottom = _ptr(pairs, (r0 + 1) * row_pairs)
            for j in range(w):
                a = top[j]
                b = bottom[j]
                out_row[j] = np.float32(np.uint16((a & 255) + (a >> 8) + (b & 255) + (b >> 8))) * inv
            return
        for r in range(r0, r0 + f):
            _prefetch_rows(luma, width, height, r + _AHEAD * f, r + _AHEAD * f + 1)
            prow = _ptr(pairs, r * row_pairs)
            if r == r0:
                for x in range(half):
                    p = prow[x]
                    acc[x] = (p & 255) + (p >> 8)
            else:
                for x in range(half):
                    p = prow[x]
                    acc[x] += (p & 255) + (p >> 8)
        g = f // 2  # pairs per block
        if g == 2:
            for j in range(w):
                q = acc32[j]
                out_row[j] = np.float32((q & 0xFFFF) + (q >> 16)) * inv
        elif g == 3:
            for j in range(w):
                out_row[j] = np.float32(np.uint32(acc[3 * j]) + acc[3 * j + 1] + acc[3 * j + 2]) * inv
        else:
            for j in range(w):
                s = np.uint32(0)
                for k in range(j * g, j * g + g):
                    s += acc[k]
                out_row[j] = np.float32(s) * inv
        return
    for r in range(r0, r0 + f):
        _prefetch_rows(luma, width, height, r + _AHEAD * f, r + _AHEAD * f + 1)
        row = _ptr(luma, r * width)
        if r == r0:
            for x in range(span):
                acc[x] = row[x]
        else:
            for x in range(span):
                acc[x] += row[x]
    if f == 3:  # a constant stride lets LLVM vectorise the interleaved loads (960x540 inputs)
        for j in range(w):
            out_row[j] = np.float32(np.uint32(acc[3 * j]) + acc[3 * j + 1] + acc[3 * j + 2]) * inv
    else:
        for j in range(w):
            s = np.uint32(0)
            for k in range(j * f, j * f + f):
                s += acc[k]
            out_row[j] = np.float32(s) * inv


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _downscale_scratch(w: int, f: int) -> np.ndarray:  # pragma: no cover
    """The uint16 scratch row of :func:`_downscale_row` for ``w`` analysis pixels at factor ``f``."""
    return np.empty(w * f + (w * f) % 2, dtype=np.uint16)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def downscale_area(luma: np.ndarray, f: int, out: np.ndarray) -> None:  # pragma: no cover
    """Mean of each f x f block of ``luma`` (uint8, C-contiguous: its rows are read through
    pointers) into ``out`` (float32, shape (H//f, W//f))."""
    h, w = out.shape
    acc = _downscale_scratch(w, f)
    pairs = _pair_view(luma)
    height, width = luma.shape
    acc32 = acc.view(np.uint32)
    paired = pairs.shape[0] > 0
    for i in range(h):
        _downscale_row(
            _ptr(luma, 0), _ptr(pairs, 0), paired, width, height, f, i, _ptr(acc, 0), _ptr(acc32, 0), _ptr(out, i), w
        )


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _chroma_rows(  # pragma: no cover
    row_u: Any, row_v: Any, cidx: Any, n: int, stride: int, out_u: Any, out_v: Any, w: int
) -> None:
    """One row of both chroma planes minus 128, sampled at columns ``cidx``, each sample twice.

    Pointers, as in :func:`_downscale_row`: ``row_u`` and ``row_v`` to the rows of the planes,
    ``cidx`` to ``n`` uint32 column indices, ``out_u`` and ``out_v`` to ``w`` float32 each.
    Chroma is sampled at half the analysis resolution, like 4:2:0 at native size: column pair
    (2k, 2k + 1) takes sample ``cidx[k]``. ``stride`` > 0 says that ``cidx[k] == cidx[0] +
    stride * k`` (4:2:0 input at any integer factor): constant strides let LLVM vectorise the
    loads, where the general gather runs at about a third of the speed. Both planes in one call:
    the call and its branches cost as much as one plane's loop at 320x180.
    """
    su = _ptr(row_u, int(cidx[0]))
    sv = _ptr(row_v, int(cidx[0]))
    m = w // 2
    c128 = np.float32(128.0)
    if stride == 1:
        for k in range(m):
            out_u[2 * k] = out_u[2 * k + 1] = np.float32(su[k]) - c128
            out_v[2 * k] = out_v[2 * k + 1] = np.float32(sv[k]) - c128
    elif stride == 2:
        for k in range(m):
            out_u[2 * k] = out_u[2 * k + 1] = np.float32(su[2 * k]) - c128
            out_v[2 * k] = out_v[2 * k + 1] = np.float32(sv[2 * k]) - c128
    elif stride == 3:
        for k in range(m):
            out_u[2 * k] = out_u[2 * k + 1] = np.float32(su[3 * k]) - c128
            out_v[2 * k] = out_v[2 * k + 1] = np.float32(sv[3 * k]) - c128
    elif stride == 4:
        for k in range(m):
            out_u[2 * k] = out_u[2 * k + 1] = np.float32(su[4 * k]) - c128
            out_v[2 * k] = out_v[2 * k + 1] = np.float32(sv[4 * k]) - c128
    elif stride == 6:
        for k in range(m):
            out_u[2 * k] = out_u[2 * k + 1] = np.float32(su[6 * k]) - c128
            out_v[2 * k] = out_v[2 * k + 1] = np.float32(sv[6 * k]) - c128
    else:
        for k in range(m):
            out_u[2 * k] = out_u[2 * k + 1] = np.float32(row_u[cidx[k]]) - c128
            out_v[2 * k] = out_v[2 * k + 1] = np.float32(row_v[cidx[k]]) - c128
    if w % 2:
        out_u[w - 1] = np.float32(row_u[cidx[n - 1]]) - c128
        out_v[w - 1] = np.float32(row_v[cidx[n - 1]]) - c128


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def background_slope(bg: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """Slope of the background in grey levels per analysis pixel, rounded down into uint8 ``out``:
    at each pixel, half the larger of its central differences across and down (one-sided at
    the frame's edges). A background within 0..255 has slopes within 0..255; a byte plane is a
    quarter of the memory that motion_step streams for it."""
    h, w = bg.shape
    half = np.float32(0.5)
    for i in range(h):
        row = bg[i]
        up = bg[max(i - 1, 0)]
        down = bg[min(i + 1, h - 1)]
        vscale = half if 0 < i < h - 1 else np.float32(1.0)
        orow = out[i]
        if w == 1:
            orow[0] = np.uint8(vscale * abs(down[0] - up[0]))
            continue
        orow[0] = np.uint8(max(abs(row[1] - row[0]), vscale * abs(down[0] - up[0])))
        for j in range(1, w - 1):
            orow[j] = np.uint8(max(half * abs(row[j + 1] - row[j - 1]), vscale * abs(down[j] - up[j])))
        orow[w - 1] = np.uint8(max(abs(row[w - 1] - row[w - 2]), vscale * abs(down[w - 1] - up[w - 1])))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _fg_span(row: Any, words: Any, n: int, n_words: int) -> tuple[int, int]:  # pragma: no cover
    """[a, z): from the first ``_RAW_FG`` pixel of a raw mask row to just past its last ((0, 0)
    if none). ``row`` points to the row's ``n`` bytes and ``words`` to the same row as
    ``n_words`` uint64 (0 when the width is not a multiple of 8): eight pixels are skipped at a
    time while none of them is foreground (its value 2 is bit 1 of its byte)."""
    fg_bits = np.uint64(0x0202020202020202)
    k = 0
    while k < n_words and (words[k] & fg_bits) == 0:
        k += 1
    a = 8 * k
    while a < n and row[a] != _RAW_FG:
        a += 1
    if a >= n:
        return 0, 0
    k = n_words
    while k > 0 and (words[k - 1] & fg_bits) == 0:
        k -= 1
    z = 8 * k if n_words > 0 else n
    while z > a and row[z - 1] != _RAW_FG:
        z -= 1
    return a, z


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _pixel_test(  # pragma: no cover
    d: np.float32,
    dn: np.float32,
    nz: np.float32,
    slope: np.uint8,
    du: np.float32,
    dv: np.float32,
    floor: np.float32,
    k_sigma: np.float32,
    edge_gain: np.float32,
    cthr: np.float32,
) -> tuple[np.bool_, np.bool_, np.float32, np.float32]:
    """motion_step's test of one pixel: (foreground, |d|, luma threshold) from its differences to
    the background (luma ``d``, centred chroma ``du`` and ``dv``), noise and slope.

    A camera shake of s pixels changes a pixel on an edge by about s times the slope: that much
    more is needed to be foreground (the weak test keeps the threshold, so such a difference
    still counts half next to an object).

    ``dn`` is the smallest |x - background| over the pixel's 8 neighbours (``P_NEIGHBOURS``;
    else a huge value). Returns (foreground, own, |d|, threshold): ``own`` is the test against
    the pixel's own background alone; foreground also needs the luma to differ from every
    neighbour's background (or the chroma to differ). Inlined, so that the loops around it
    vectorise.
    """
    ad = abs(d)
    thr = max(floor, k_sigma * nz)
    thr_fg = thr + edge_gain * np.float32(slope)
    colour = (abs(du) > cthr) | (abs(dv) > cthr)
    own = (ad > thr_fg) | colour
    return own & ((dn > thr_fg) | colour), own, ad, thr


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def motion_step(  # pragma: no cover
    luma: np.ndarray,
    f: int,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    params: np.ndarray,
    bg: np.ndarray,
    noise: np.ndarray,
    bg_uv: np.ndarray,
    fg_count: np.ndarray,
    slope: np.ndarray,
    raw_mask: np.ndarray,
    last: np.ndarray,
    stats: np.ndarray,
) -> None:
    """One frame of motion detection, fused row by row: downscale, (blur), test, update.

    Each analysis row is downscaled, tested and learned while its input rows are still in cache;
    the analysis frame itself is never stored. With ``P_LEARN_ROWS`` k > 0 only one row in
    ``LEARN_EVERY`` learns (rows i with (i + k) % LEARN_EVERY == 0), at the rates compounded over
    that many frames (1 - (1 - rate)^LEARN_EVERY), and absorbs after ``P_ABSORB_FRAMES`` /
    LEARN_EVERY of its learning frames; every row is tested on every frame.

    With ``P_NEIGHBOURS`` on, a luma difference is foreground only if the pixel also differs
    (by its threshold plus the slope term) from the background of each of its 8 neighbours: the
    spatial tolerance of ViBe and SuBSENSE (a leaf, a ripple or a camera shaken by a pixel
    shows a value the background holds one pixel away), at one comparison per neighbour. A
    pixel let off this way learns nothing on that frame (neither background nor noise): were
    it to learn the value, its neighbour would match it on a later frame, and a stopped person
    would wear away from the outline in, ring by ring (ViBe's known weakness). A chroma
    difference stays foreground on its own.

    Args:
        luma: (H, W) uint8 luma plane of the decoded frame, C-contiguous (the planes' rows are
            read through pointers, as in every kernel here; the wrappers check).
        f: integer area-downscale factor; the analysis frame is (H // f, W // f).
        chroma_u: (Hc, Wc) uint8 U plane (any subsampling, C-contiguous), or a (1, 1) dummy when
            chroma is off.
        chroma_v: same shape as ``chroma_u``.
        params: float64 vector indexed by ``P_*``.
        bg: (h, w) float32 background luma.
        noise: (h, w) float32 per-pixel noise (running mean absolute deviation).
        bg_uv: (2, h, w) float32 background chroma, centred: U - 128 and V - 128 (the shadow
            test scales chroma about neutral grey; centred values save four subtractions a pixel).
        fg_count: (h, w) float32 per-pixel foreground count: +1 on foreground, -1 on background,
            within [0, 65535] (float: no integer conversions in the vectorised loop); counted on
            the frames the pixel's row learns on.
        slope: (h, w) uint8 background slope from :func:`background_slope` (read only); the
            luma threshold of foreground rises by ``P_EDGE`` times it.
        raw_mask: (h, w) uint8: in, the previous frame's (read by the shadow test); out, 2
            foreground, 1 shadow or weak difference, 0 background.
        last: (h, w) uint8: in, the previous frame's analysis frame, rounded (read by the
            shadow test); out, this frame's.
        stats: float64 vector indexed by ``S_*`` (overwritten).
    """
    h, w = bg.shape
    k_sigma = np.float32(params[P_THR_SIGMA])
    floor = np.float32(params[P_FLOOR])
    cthr = np.float32(params[P_CHROMA_THR])
    alpha = np.float32(params[P_ALPHA])
    nalpha = np.float32(params[P_NOISE_ALPHA])
    absorb_frames = np.float32(min(params[P_ABSORB_FRAMES], 65000.0))
    absorb_alpha = np.float32(params[P_ABSORB_ALPHA])
    relearn = params[P_RELEARN] > 0.5
    learn_rows = 0 if relearn else int(params[P_LEARN_ROWS])
    if learn_rows > 0:
        # each row learns on one frame in LEARN_EVERY: at the rates of that many frames, and its
        # foreground count counts the frames it learns on
        alpha = np.float32(1.0 - (1.0 - params[P_ALPHA]) ** LEARN_EVERY)
        nalpha = np.float32(1.0 - (1.0 - params[P_NOISE_ALPHA]) ** LEARN_EVERY)
        absorb_alpha = np.float32(1.0 - (1.0 - params[P_ABSORB_ALPHA]) ** LEARN_EVERY)
        absorb_frames = absorb_frames / np.float32(LEARN_EVERY)
    use_chroma = cthr > 0.0
    sh_lo = np.float32(params[P_SHADOW_LO])
    # shadows are told apart by chroma only; hi < 0 matches no pixel
    sh_hi = np.float32(params[P_SHADOW_HI]) if (sh_lo > 0.0 and use_chroma) else np.float32(-1.0)
    sh_c = np.float32(params[P_SHADOW_CHROMA])
    shadows = sh_hi > 0.0
    # above sh_hi and up to light_hi, lighter shade (P_SHADE; else none: below any ratio)
    light_hi = np.float32(1.0) if params[P_SHADE] > 0.5 else np.float32(-1.0)
    blur = params[P_BLUR] > 0.5
    weak = np.float32(params[P_WEAK])
    cthr_test = cthr if use_chroma else np.float32(1e30)
    if relearn:
        # nothing is foreground and everything learns at alpha; finite (no inf under fastmath)
        floor = np.float32(1e30)
        cthr_test = np.float32(1e30)
        weak = np.float32(1.0)
    hc, wc = chroma_u.shape
    # chroma sample of analysis pixel pair k: the one at the pair's centre, ((2k + 1) / w) * wc
    cidx = np.zeros((w + 1) // 2, dtype=np.uint32)  # unsigned: no negative-index wraparound
    for k in range(cidx.shape[0]):
        cidx[k] = min(wc - 1, (2 * k + 1) * wc // w)
    stride = int(cidx[1]) - int(cidx[0]) if cidx.shape[0] > 1 else 1
    for k in range(cidx.shape[0]):
        if int(cidx[k]) != int(cidx[0]) + stride * k:
            stride = 0  # not a constant stride: the general gather
    acc = _downscale_scratch(w, f)
    pairs = _pair_view(luma)
    height, width = luma.shape
    acc32 = acc.view(np.uint32)
    paired = pairs.shape[0] > 0
    # ring of three downscaled rows: the blur needs the rows above and below
    ring = np.empty((3, w), dtype=np.float32)
    tmp = np.empty(w, dtype=np.float32)
    xpad = np.empty(w + 2, dtype=np.float32)  # the shadow test's spans, padded by their neighbours
    bpad = np.empty(w + 2, dtype=np.float32)
    prev = np.empty(w, dtype=np.uint8)  # this row of the previous frame's raw mask (shadow test)
    # the raw mask 8 pixels a word, to find a row's foreground span fast (other widths: by byte)
    raw_words = raw_mask.view(np.uint64) if w % 8 == 0 else np.zeros((h, 0), dtype=np.uint64)
    xrow = np.empty(w, dtype=np.float32)
    nrow = np.empty(w, dtype=np.float32)  # smallest |x - background| over the 8 neighbours
    neighbours = params[P_NEIGHBOURS] > 0.5 and not relearn
    big = np.float32(1e30)
    urow = np.zeros(w, dtype=np.float32)  # centred chroma; neutral without chroma planes
    vrow = np.zeros(w, dtype=np.float32)
    u_bg = bg_uv[0]
    v_bg = bg_uv[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    cnt_max = np.float32(65535.0)
    n_fg = np.float32(0.0)
    idle_sum = np.float32(0.0)
    edge_gain = np.float32(params[P_EDGE])
    # coloured fraction, from every 8th analysis row: a frame-wide figure needs no more
    coloured = np.float32(COLOURED)
    n_coloured = np.float32(0.0)
    cs_rows = 0
    # S_CORR's sums over whole blocks (a block's sum of up to 16 values of 0..255 is exact in float32)
    mid = 128.0 * _BLOCK * _BLOCK
    c_n = 0.0
    wb = w // _BLOCK
    col_x = np.zeros(w, dtype=np.float32)
    col_b = np.zeros(w, dtype=np.float32)
    c_x = 0.0
    c_b = 0.0
    c_xx = 0.0
    c_bb = 0.0
    c_xb = 0.0
    if blur:
        _downscale_row(
            _ptr(luma, 0), _ptr(pairs, 0), paired, width, height, f, 0, _ptr(acc, 0), _ptr(acc32, 0), _ptr(ring, 0), w
        )
    for i in range(h):
        # the chroma row of a later row pair is fetched while this row computes (the luma rows
        # are hinted in _downscale_row); the planes of a 720p or 1080p frame do not fit in L2
        ahead = i + _AHEAD
        if use_chroma and ahead % 2 == 0 and ahead < h:
            ci = min(hc - 1, (ahead + 1) * hc // h)
            _prefetch_rows(_ptr(chroma_u, 0), wc, hc, ci, ci + 1)
            _prefetch_rows(_ptr(chroma_v, 0), wc, hc, ci, ci + 1)
        # with the blur, the row below goes into the ring (which holds the rows above and
        # below); without, this row goes straight to xrow
        r = i + 1 if blur else i
        if r < h:
            out = _ptr(ring, r % 3) if blur else _ptr(xrow, 0)
            _downscale_row(
                _ptr(luma, 0), _ptr(pairs, 0), paired, width, height, f, r, _ptr(acc, 0), _ptr(acc32, 0), out, w
            )
        if blur:
            above = _ptr(ring, max(i - 1, 0) % 3)
            here = _ptr(ring, i % 3)
            below = _ptr(ring, min(i + 1, h - 1) % 3)
            for j in range(w):
                tmp[j] = above[j] + np.float32(2.0) * here[j] + below[j]
            if w == 1:
                xrow[0] = tmp[0] * np.float32(0.25)
            else:
                xrow[0] = (np.float32(3.0) * tmp[0] + tmp[1]) * np.float32(0.0625)
                for j in range(1, w - 1):
                    xrow[j] = (tmp[j - 1] + np.float32(2.0) * tmp[j] + tmp[j + 1]) * np.float32(0.0625)
                xrow[w - 1] = (tmp[w - 2] + np.float32(3.0) * tmp[w - 1]) * np.float32(0.0625)
        if use_chroma and i % 2 == 0:  # one chroma row per pair of analysis rows
            ci = min(hc - 1, (i + 1) * hc // h)
            _chroma_rows(
                _ptr(chroma_u, ci),
                _ptr(chroma_v, ci),
                _ptr(cidx, 0),
                cidx.shape[0],
                stride,
                _ptr(urow, 0),
                _ptr(vrow, 0),
                w,
            )
            if i % 8 == 0:
                cs_rows += 1
                for j in range(w):
                    n_coloured += one if abs(urow[j]) + abs(vrow[j]) > coloured else zero
        # pointers, not views: see _ptr
        xr_ = _ptr(xrow, 0)
        ur_ = _ptr(urow, 0)
        vr_ = _ptr(vrow, 0)
        bgr = _ptr(bg, i)
        slr = _ptr(slope, i)
        nzr = _ptr(noise, i)
        ubr = _ptr(u_bg, i)
        vbr = _ptr(v_bg, i)
        cnr = _ptr(fg_count, i)
        rmr = _ptr(raw_mask, i)
        nr_ = _ptr(nrow, 0)
        if neighbours:
            # the backgrounds of the row above (as learned on this frame, if it learned) and of
            # this row and the row below (as before this frame); neighbours outside the frame
            # are left out (the frame's edge rows and columns see their own row or column)
            bu = _ptr(bg, max(i - 1, 0))
            bd = _ptr(bg, min(i + 1, h - 1))
            for j in range(w):
                x = xr_[j]
                nr_[j] = min(abs(x - bu[j]), abs(x - bd[j]))
            if w > 1:
                for j in range(1, w):
                    x = xr_[j]
                    nr_[j] = min(nr_[j], abs(x - bu[j - 1]), abs(x - bgr[j - 1]), abs(x - bd[j - 1]))
                for j in range(w - 1):
                    x = xr_[j]
                    nr_[j] = min(nr_[j], abs(x - bu[j + 1]), abs(x - bgr[j + 1]), abs(x - bd[j + 1]))
        else:
            for j in range(w):
                nr_[j] = big
        n_fg_before = n_fg
        # column sums over a band of _BLOCK rows of the frame and of the background before this
        # frame's learning (one vectorised add a pixel), then block sums for S_CORR once a band
        for j in range(w):
            col_x[j] += xr_[j]
            col_b[j] += bgr[j]
        if i % _BLOCK == _BLOCK - 1:
            # in float64 and about mid-grey: the variance is a difference of two large sums
            for k in range(wb):
                q = _BLOCK * k
                bx = np.float64(col_x[q] + col_x[q + 1] + col_x[q + 2] + col_x[q + 3]) - mid
                bb = np.float64(col_b[q] + col_b[q + 1] + col_b[q + 2] + col_b[q + 3]) - mid
                c_x += bx
                c_b += bb
                c_xx += bx * bx
                c_bb += bb * bb
                c_xb += bx * bb
            for j in range(w):
                col_x[j] = zero
                col_b[j] = zero
            c_n += wb
        if shadows:
            for j in range(w):
                prev[j] = rmr[j]
        # test and update; selects, not branches, so that the loops vectorise
        if learn_rows == 0 or (i + learn_rows) % LEARN_EVERY == 0:
            for j in range(w):
                x = xr_[j]
                b = bgr[j]
                nz = nzr[j]
                ub = ubr[j]
                vb = vbr[j]
                cnt = cnr[j]
                d = x - b
                du = ur_[j] - ub
                dv = vr_[j] - vb
                fg, own, ad, thr = _pixel_test(d, nr_[j], nz, slr[j], du, dv, floor, k_sigma, edge_gain, cthr_test)
                # a pixel that differs from its own background but matches a neighbour's is not
                # foreground and learns nothing: learning it would carry a stopped object's
                # colour into the next pixel's neighbourhood, ring by ring
                # arithmetic on 0/1 rather than nested selects: LLVM vectorises it (the selects
                # cost the loop its vectorisation, and the step twice its time)
                learn = one - np.float32(own)
                rate = alpha * learn + absorb_alpha * np.float32(fg & (cnt >= absorb_frames))
                bgr[j] = b + rate * d
                ubr[j] = ub + rate * du
                vbr[j] = vb + rate * dv
                # not ``own`` means ad <= thr_fg: the noise learns from every idle difference
                nzr[j] = nz + learn * nalpha * (ad - nz)
                cnr[j] = min(cnt + one, cnt_max) if fg else max(cnt - one, zero)
                # byte constants: LLVM blends them under the compare masks, no float-to-byte conversion
                rmr[j] = _RAW_FG if fg else (_RAW_WEAK if ad > weak * thr else _RAW_BG)
                n_fg += one if fg else zero
                idle_sum += zero if fg else ad
        else:  # tested only: the row learns on a later frame
            for j in range(w):
                fg, _own, ad, thr = _pixel_test(
                    xr_[j] - bgr[j],
                    nr_[j],
                    nzr[j],
                    slr[j],
                    ur_[j] - ubr[j],
                    vr_[j] - vbr[j],
                    floor,
                    k_sigma,
                    edge_gain,
                    cthr_test,
                )
                rmr[j] = _RAW_FG if fg else (_RAW_WEAK if ad > weak * thr else _RAW_BG)
                n_fg += one if fg else zero
                idle_sum += zero if fg else ad
        if shadows and n_fg > n_fg_before:
            # A shadow darkens and desaturates by one ratio x / b and keeps the hue (tested
            # multiplied through by b: no division). Deep shadows (ratio sh_lo to sh_hi) need no
            # more. Lighter shade (a cloud; up to light_hi, 1 with P_SHADE) must also keep the
            # contrast across the pixel, neighbour to neighbour, scaled by the same ratio,
            # x' = (x / b) b', to within the pixel's threshold: a dark object brings its own
            # contrast. Only rows with foreground are tested, after the update (foreground
            # learns nothing before it is absorbed, so b is this frame's background), and only
            # the span from the row's first foreground pixel to its last (a car covers a tenth
            # of a row). The span is padded by its neighbours, or by its own edge values at the
            # frame's edges (one-sided contrast there); indices count from the span's start
            # (pointers to it), so that the loop vectorises.
            a, z = _fg_span(rmr, _ptr(raw_words, i), w, raw_words.shape[1])
            n = z - a
            xs = _ptr(xrow, a)
            bs = _ptr_at(bg, i, a)
            us = _ptr(urow, a)
            vs = _ptr(vrow, a)
            ubs = _ptr_at(u_bg, i, a)
            vbs = _ptr_at(v_bg, i, a)
            nzs = _ptr_at(noise, i, a)
            rs = _ptr_at(raw_mask, i, a)
            ps = _ptr(prev, a)
            ls = _ptr_at(last, i, a)
            xm = _ptr(xpad, 1)
            bm = _ptr(bpad, 1)
            for k in range(n):
                xm[k] = xs[k]
                bm[k] = bs[k]
            xpad[0] = xrow[max(a - 1, 0)]
            xpad[n + 1] = xrow[min(z, w - 1)]
            bpad[0] = bg[i, max(a - 1, 0)]
            bpad[n + 1] = bg[i, min(z, w - 1)]
            xr = _ptr(xpad, 2)
            br = _ptr(bpad, 2)
            for k in range(n):
                x = xs[k]
                b = bs[k]
                bb = max(b, one)
                su = us[k] * bb - x * ubs[k]
                sv = vs[k] * bb - x * vbs[k]
                lim = sh_c * bb
                thr = max(floor, k_sigma * nzs[k])
                across = br[k] - bpad[k]
                contrast = (xr[k] - xpad[k]) * bb - x * across
                deep = x <= sh_hi * bb
                # Both tests hold for any darker object on a flat grey background: with no
                # colour to keep and no contrast to scale, a grey bird on grey water or a dark
                # car on a grey road was shade. So a shadow also needs something a dark object
                # would fail: colour on the background (a grey object loses it), contrast
                # across it (a flat object loses it), or a gradual arrival: within the threshold
                # of the last frame and not foreground then, as under a cloud's soft edge (an
                # object's edge arrives at once, and its inside was foreground before)
                told = (
                    (x * abs(across) > thr * bb) | (x * abs(ubs[k]) > lim) | (x * abs(vbs[k]) > lim)
                    | ((ps[k] != _RAW_FG) & (abs(x - np.float32(ls[k])) <= thr))
                )  # fmt: skip
                light = (x <= light_hi * bb) & (abs(contrast) <= thr * bb)
                sh = (x < b) & (x >= sh_lo * bb) & (abs(su) <= lim) & (abs(sv) <= lim) & (deep | light) & told
                r = rs[k]
                rs[k] = _RAW_SHADOW if (sh & (r == _RAW_FG)) else r
        if relearn:
            for j in range(w):
                cnr[j] = zero
        lr = _ptr(last, i)  # for the next frame's shadow test
        for j in range(w):
            lr[j] = np.uint8(xr_[j] + np.float32(0.5))
    stats[S_FG] = n_fg
    stats[S_IDLE_ABSDIFF] = idle_sum
    stats[S_IDLE_COUNT] = h * w - n_fg
    stats[S_CHROMA] = n_coloured / (cs_rows * w) if cs_rows > 0 else 0.0
    c_n = max(c_n, 1.0)
    vx = c_xx / c_n - (c_x / c_n) ** 2
    vb = c_bb / c_n - (c_b / c_n) ** 2
    cov = c_xb / c_n - (c_x / c_n) * (c_b / c_n)
    # a flat frame or background (block means within a hundredth of a grey level) has no structure
    # to tell a relit view by: correlated, as a view that only changed its brightness
    flat = 0.01 * 0.01 * _BLOCK**4
    stats[S_CORR] = min(1.0, max(-1.0, cov / np.sqrt(vx * vb))) if vx > flat and vb > flat else 1.0


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _xorshift(state: np.uint64) -> np.uint64:  # pragma: no cover
    """The next state of a 32-bit xorshift generator (Marsaglia 2003), held in a uint64."""
    m = np.uint64(0xFFFFFFFF)
    state ^= (state << np.uint64(13)) & m
    state ^= state >> np.uint64(17)
    state ^= (state << np.uint64(5)) & m
    return state


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _lbsp(frame: np.ndarray, i: Any, j: Any) -> np.uint16:  # pragma: no cover
    """The 16-bit texture descriptor of ``frame[i, j]`` (see ``_LBSP_REL``); ring pixels outside
    the frame repeat its edge."""
    h, w = frame.shape
    c = np.float32(frame[i, j])
    t = c * np.float32(_LBSP_REL) + np.float32(_LBSP_ABS)
    d = 0
    if 2 <= i < h - 2 and 2 <= j < w - 2:  # inside: no clamping (most pixels)
        for k in range(16):
            d |= (1 << k) if abs(np.float32(frame[i + _RING_DY[k], j + _RING_DX[k]]) - c) > t else 0
        return np.uint16(d)
    for k in range(16):
        ii = min(h - 1, max(0, i + _RING_DY[k]))
        jj = min(w - 1, max(0, j + _RING_DX[k]))
        d |= (1 << k) if abs(np.float32(frame[ii, jj]) - c) > t else 0
    return np.uint16(d)


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _spread_draw(rng: np.uint64, i: Any, j: Any, h: int, w: int) -> tuple[np.uint64, Any, Any]:  # pragma: no cover
    """The next random state and the pixel of an (h, w) frame a new sample of pixel (i, j) is
    drawn from: an offset of about 1.5 pixels (``_SPREAD``), clamped to the frame."""
    rng = _xorshift(rng)
    ii = min(h - 1, max(0, i + _SPREAD[rng & np.uint64(63)]))
    jj = min(w - 1, max(0, j + _SPREAD[(rng >> np.uint64(6)) & np.uint64(63)]))
    return rng, ii, jj


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _bits(v: int) -> int:  # pragma: no cover
    """Set bits of a 16-bit value."""
    v = v - ((v >> 1) & 0x5555)
    v = (v & 0x3333) + ((v >> 2) & 0x3333)
    v = (v + (v >> 4)) & 0x0F0F
    return (v + (v >> 8)) & 0x1F


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _chroma_at(plane: np.ndarray, i: Any, j: Any, h: int, w: int) -> np.float32:  # pragma: no cover
    """The centred chroma (value - 128) of analysis pixel (i, j) of an (h, w) analysis frame: the
    plane's sample at the centre of the pixel's 2 x 2 block, as motion_step samples it."""
    hc, wc = plane.shape
    ci = min(hc - 1, (2 * (i // 2) + 1) * hc // h)
    cj = min(wc - 1, (2 * (j // 2) + 1) * wc // w)
    return np.float32(plane[ci, cj]) - np.float32(128.0)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def sample_veto(  # pragma: no cover
    params: np.ndarray,
    ctl: np.ndarray,
    frame: np.ndarray,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    bg_uv: np.ndarray,
    noise: np.ndarray,
    raw: np.ndarray,
    samples: np.ndarray,
    texture: np.ndarray,
    desc: np.ndarray,
) -> int:
    """After :func:`motion_step`: foreground that the pixel's sample set explains counts half,
    then the sample sets learn (see ``SAMPLES``). Returns the number of foreground pixels demoted.

    On a new view (the first frame, ``C_FIRST``, or the first of a relearning window: the
    frame before was a global change, ``C_GLOBAL``) every pixel's samples are drawn anew from
    ``frame`` around it (offsets ``_SPREAD``; the frame's textures computed once into ``desc``)
    and nothing is tested: a few ms at 320x180, so not on every frame of the window, whose
    frames only teach the samples as below (nothing in them is foreground).
    Otherwise, with ``P_SAMPLES`` on, a ``_RAW_FG`` pixel of ``raw`` becomes ``_RAW_WEAK`` when
    ``_SAMPLE_MATCHES`` of its samples lie within ``_SAMPLE_REACH`` times its threshold
    (``max(P_FLOOR, P_THR_SIGMA * noise)``) with at most ``_SAMPLE_BITS`` texture bits different,
    unless its colour differs from the background's by more than ``_SAMPLE_REACH`` times
    ``P_CHROMA_THR`` (sampled as motion_step does): the samples hold luma only, and an object of
    the background's brightness in another colour is no moving background; it becomes
    ``_RAW_BG`` instead where its samples' standard deviation exceeds ``_SAMPLE_MOVING`` times its
    threshold (a moving background), and there a ``_RAW_WEAK`` pixel so matched becomes
    ``_RAW_BG`` too (elsewhere it stays weak; only weak pixels within the row's span from its
    first foreground pixel to its last are tested, the span the test scans);
    then, along each row, about one pixel in ``every`` that is clean background (raw 0) writes
    its value and texture into a random sample of its own and of a random neighbour, where
    ``every`` is ``(C_FRAMES + 1) // 2`` within [``_SAMPLE_EVERY_YOUNG``, ``_SAMPLE_EVERY``].

    Args:
        params: float64 vector indexed by ``P_*``.
        ctl: the stream's control vector; ``C_RNG`` holds the random state, advanced here
            (0: ``RNG_SEED``); ``C_FRAMES`` (frames analysed before this one) sets the update rate.
        frame: (h, w) uint8 analysis frame (motion_step's ``last``).
        chroma_u: the U plane as given to motion_step (a (1, 1) dummy without chroma).
        chroma_v: the V plane, the same shape.
        bg_uv: (2, h, w) float32 background chroma, centred.
        noise: (h, w) float32 per-pixel noise.
        raw: (h, w) uint8 raw mask, changed in place.
        samples: (h, w, n) uint8 sample values, a pixel's together (n = 0: nothing to do).
        texture: (h, w, n) uint16 their LBSP descriptors.
        desc: (h, w) uint16 scratch (overwritten on a new view).
    """
    h, w, n = samples.shape
    if n == 0:
        return 0
    rng = np.uint64(ctl[C_RNG])
    if rng == 0:  # xorshift's fixed point: a control vector never reset
        rng = np.uint64(RNG_SEED)
    if params[P_RELEARN] > 0.5 and (ctl[C_FIRST] > 0.5 or ctl[C_GLOBAL] > 0.5):
        for i in range(h):
            for j in range(w):
                desc[i, j] = _lbsp(frame, i, j)
        for k in range(n):
            for i in range(h):
                for j in range(w):
                    rng, ii, jj = _spread_draw(rng, i, j, h, w)
                    samples[i, j, k] = frame[ii, jj]
                    texture[i, j, k] = desc[ii, jj]
        ctl[C_RNG] = np.float64(rng)
        return 0
    demoted = 0
    if params[P_SAMPLES] > 0.5:
        floor = np.float32(params[P_FLOOR])
        k_sigma = np.float32(params[P_THR_SIGMA])
        reach = np.float32(_SAMPLE_REACH)
        cthr = reach * np.float32(params[P_CHROMA_THR])
        # a row's foreground span found eight pixels at a time (see _fg_span)
        words = raw.view(np.uint64) if w % 8 == 0 else np.zeros((h, 0), dtype=np.uint64)
        for i in range(h):
            a, z = _fg_span(_ptr(raw, i), _ptr(words, i), w, words.shape[1])
            for j in range(a, z):
                rv = raw[i, j]
                if rv == _RAW_BG:
                    continue
                if cthr > 0.0:
                    du = _chroma_at(chroma_u, i, j, h, w) - bg_uv[0, i, j]
                    dv = _chroma_at(chroma_v, i, j, h, w) - bg_uv[1, i, j]
                    if abs(du) > cthr or abs(dv) > cthr:
                        continue
                x = np.float32(frame[i, j])
                thr = max(floor, k_sigma * noise[i, j])
                r = reach * thr
                d = int(_lbsp(frame, i, j))
                c = 0
                for k in range(n):
                    near = abs(x - np.float32(samples[i, j, k])) <= r
                    c += 1 if (near and _bits(d ^ int(texture[i, j, k])) <= _SAMPLE_BITS) else 0
                if c >= _SAMPLE_MATCHES:
                    # the samples' spread, on matched pixels only: n values at most 255, exact in float32
                    s1 = np.float32(0.0)
                    s2 = np.float32(0.0)
                    for k in range(n):
                        sv = np.float32(samples[i, j, k])
                        s1 += sv
                        s2 += sv * sv
                    spread = np.float32(n) * s2 - s1 * s1  # n^2 times the variance
                    moving = spread > (np.float32(n * _SAMPLE_MOVING) * thr) ** 2
                    raw[i, j] = _RAW_BG if moving else _RAW_WEAK
                    demoted += 1 if rv == _RAW_FG else 0
    every = min(_SAMPLE_EVERY, max(_SAMPLE_EVERY_YOUNG, (int(ctl[C_FRAMES]) + 1) // 2))
    gap = np.uint64(2 * every - 1)  # gaps of 1 to 2 * every - 1: every on average
    for i in range(h):
        rng = _xorshift(rng)
        col = np.int64(rng % np.uint64(every))
        while col < w:
            if raw[i, col] == _RAW_BG:
                rng = _xorshift(rng)
                v = frame[i, col]
                d16 = _lbsp(frame, i, col)
                slot = np.int64(rng % np.uint64(n))
                samples[i, col, slot] = v
                texture[i, col, slot] = d16
                slot = np.int64((rng >> np.uint64(8)) % np.uint64(n))
                q = np.int64((rng >> np.uint64(16)) & np.uint64(7))
                ii = min(h - 1, max(0, i + _NB_DY[q]))
                jj = min(w - 1, max(0, col + _NB_DX[q]))
                samples[ii, jj, slot] = v
                texture[ii, jj, slot] = d16
            rng = _xorshift(rng)
            col += 1 + np.int64(rng % gap)
    ctl[C_RNG] = np.float64(rng)
    return demoted


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def veil_test(  # pragma: no cover
    params: np.ndarray,
    frame: np.ndarray,
    bg: np.ndarray,
    noise: np.ndarray,
    raw: np.ndarray,
    fg_most: float,
    scratch: np.ndarray,
    runs: np.ndarray,
    parent: np.ndarray,
) -> int:
    """After :func:`sample_veto`: the ``_RAW_FG`` pixels of ``raw`` under a veil (see
    ``_VEIL_AREA``) become ``_RAW_WEAK``; returns how many.

    A veil-like pixel is ``_RAW_FG``, brighter than its background and flat: each of the 16 pixels
    of its LBSP ring (``_RING_DY``, ``_RING_DX``; the frame's edge repeats outside it) within its
    threshold ``max(P_FLOOR, P_THR_SIGMA * noise)`` of it. Its 8-connected regions of at least
    ``_VEIL_AREA`` of the frame's pixels are demoted. Nothing happens with ``P_VEIL`` or
    ``P_REPORT`` off, nor, without a look at any pixel, when ``fg_most`` (at least the number of
    ``_RAW_FG`` pixels: motion_step's ``S_FG``, before the sample veto demoted some) is below that
    area, as on every frame of an ordinary view.

    Args:
        params: float64 vector indexed by ``P_*``.
        frame: (h, w) uint8 analysis frame (motion_step's ``last``).
        bg: (h, w) float32 background.
        noise: (h, w) float32 per-pixel noise.
        raw: (h, w) uint8 raw mask, changed in place.
        fg_most: at least the number of ``_RAW_FG`` pixels in ``raw``.
        scratch: (h, w) uint8, overwritten (motion_frame lends the cleaned mask, which the
            clean-up writes afterwards).
        runs, parent: :func:`label_runs`' scratch for an (h, w) mask, overwritten.
    """
    h, w = raw.shape
    need = _VEIL_AREA * h * w
    if params[P_VEIL] < 0.5 or params[P_REPORT] < 0.5 or fg_most < need:
        return 0
    floor = np.float32(params[P_FLOOR])
    k_sigma = np.float32(params[P_THR_SIGMA])
    for i in range(h):
        for j in range(w):
            veiled = np.uint8(0)
            x = np.float32(frame[i, j])
            if raw[i, j] == _RAW_FG and x > bg[i, j]:
                thr = max(floor, k_sigma * noise[i, j])
                veiled = np.uint8(1)
                for k in range(16):
                    ii = min(h - 1, max(0, i + _RING_DY[k]))
                    jj = min(w - 1, max(0, j + _RING_DX[k]))
                    if abs(np.float32(frame[ii, jj]) - x) > thr:
                        veiled = np.uint8(0)
                        break
            scratch[i, j] = veiled
    n_runs = label_runs(scratch, runs, parent)
    area = np.zeros(n_runs, dtype=np.float64)  # per region, at its root run
    for q in range(n_runs):
        area[_find(parent, q)] += runs[q, 2] - runs[q, 1]
    demoted = 0
    for q in range(n_runs):
        if area[parent[q]] >= need:  # a root since the pass above (_find compresses every path)
            i = runs[q, 0]
            for j in range(runs[q, 1], runs[q, 2]):
                raw[i, j] = _RAW_WEAK
            demoted += runs[q, 2] - runs[q, 1]
    return int(demoted)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def majority_filter(  # pragma: no cover
    mask: np.ndarray, radius: int, ignore: np.ndarray, out: np.ndarray, colsum: np.ndarray
) -> int:
    """Weighted majority over a (2r+1)^2 window, then the ignore mask.

    A pixel is set when twice the foreground count plus the shadow/weak count in its window
    reaches twice the majority (pixels outside the frame count as background). Without
    shadow/weak pixels this is the binary median; a shadow or a weak difference survives only
    next to an object.

    Args:
        mask: (h, w) uint8 input: 2 foreground, 1 shadow or weak, 0 background.
        radius: window radius, 0 <= r <= MAX_RADIUS.
        ignore: (h, w) uint8, 1 where motion is never reported (cleared after filtering).
        out: (h, w) uint8 0/1 output.
        colsum: (w + 2 * MAX_RADIUS,) uint8 scratch.

    Returns:
        The number of pixels set in ``out``.
    """
    h, w = mask.shape
    win = 2 * radius + 1
    need = np.uint8(2 * ((win * win) // 2 + 1))
    # column sums over the window's rows, padded by MAX_RADIUS zeros on both sides; counts fit in
    # uint8 (at most 2 * 9 * 9), so every loop below runs on 64 bytes per AVX-512 instruction
    colsum[:] = 0
    col = colsum[MAX_RADIUS : MAX_RADIUS + w]  # slices, not offset indices: no wraparound checks
    # the window sum is one loop over all 2 * MAX_RADIUS + 1 offsets, the ones outside this
    # radius masked to zero: one pass per row instead of one per offset (short rows make every
    # extra loop's set-up and remainder cost more than its arithmetic)
    keep = np.zeros(2 * MAX_RADIUS + 1, dtype=np.uint8)
    keep[MAX_RADIUS - radius : MAX_RADIUS + radius + 1] = 255
    k0, k1, k2, k3, k4, k5, k6, k7, k8 = keep[0], keep[1], keep[2], keep[3], keep[4], keep[5], keep[6], keep[7], keep[8]
    # A row's weight (its pixels' sum) bounds every window sum in the rows it falls in: output
    # rows whose window rows weigh less than the majority in total are zero without a look.
    # Scattered noise and shadow/weak pixels make most rows non-empty but far below it, so on an
    # idle or sparse frame most output rows are skipped (that was 14% of the motion stage).
    row_w = np.zeros(h, dtype=np.int64)
    if w % 8 == 0:
        # eight pixels a word: even and odd bytes summed in 16-bit lanes (each at most w / 4),
        # then the four lanes added by one multiply (40% faster than widening every byte)
        words = mask.view(np.uint64)
        lanes = np.uint64(0x00FF00FF00FF00FF)
        n_words = words.shape[1]
        for i in range(h):
            wr = _ptr(words, i)  # pointers, not views: see _ptr
            even = np.uint64(0)
            odd = np.uint64(0)
            for k in range(n_words):
                x = wr[k]
                even += x & lanes
                odd += (x >> np.uint64(8)) & lanes
            row_w[i] = ((even + odd) * np.uint64(0x0001000100010001)) >> np.uint64(48)
    else:
        for i in range(h):
            row = _ptr(mask, i)
            s = np.uint32(0)
            for j in range(w):
                s += np.uint32(row[j])
            row_w[i] = s
    per_col = np.zeros(w, dtype=np.uint16)  # set pixels per column: a uint16 sum vectorises
    window_w = 0  # weight of rows i - r .. i + r
    for k in range(min(radius, h)):
        window_w += row_w[k]
    col_row = -2  # the output row whose window col holds (none yet)
    for i in range(h):
        add = i + radius
        sub = i - radius - 1
        if add < h:
            window_w += row_w[add]
        if sub >= 0:
            window_w -= row_w[sub]
        orow = _ptr(out, i)
        if window_w < need:
            for j in range(w):
                orow[j] = 0
            continue
        if col_row == i - 1:  # slide the window down one row
            if add < h and row_w[add] != 0:
                ra = _ptr(mask, add)
                for j in range(w):
                    col[j] += ra[j]
            if sub >= 0 and row_w[sub] != 0:
                rs = _ptr(mask, sub)
                for j in range(w):
                    col[j] -= rs[j]  # wraps in uint8; the result is in range
        else:  # after skipped rows: sum the window's rows afresh
            col[:] = 0
            for k in range(max(sub + 1, 0), min(add + 1, h)):
                if row_w[k] != 0:
                    rk = _ptr(mask, k)
                    for j in range(w):
                        col[j] += rk[j]
        col_row = i
        irow = _ptr(ignore, i)
        c = colsum
        for j in range(w):
            s = (
                (c[j] & k0) + (c[j + 1] & k1) + (c[j + 2] & k2) + (c[j + 3] & k3) + (c[j + 4] & k4)
                + (c[j + 5] & k5) + (c[j + 6] & k6) + (c[j + 7] & k7) + (c[j + 8] & k8)
            )  # fmt: skip
            o = np.uint8(np.uint8(s) >= need) & (np.uint8(1) ^ irow[j])
            orow[j] = o
            per_col[j] += o
    total = 0
    for j in range(w):
        total += per_col[j]
    return total


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _find(parent: np.ndarray, a: int) -> int:  # pragma: no cover
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def label_components(  # pragma: no cover
    mask: np.ndarray, runs: np.ndarray, parent: np.ndarray, boxes: np.ndarray
) -> int:
    """8-connected components of a 0/1 mask, by runs and union-find: :func:`label_runs`, then
    :func:`runs_to_boxes`.

    Args:
        mask: (h, w) uint8 0/1.
        runs: (h * (w // 2 + 1), 3) int32 scratch: row, start, end (exclusive) of each run.
        parent: (h * (w // 2 + 1),) int32 scratch.
        boxes: (n_max, BOX_FIELDS) int64 output; row k = x0, y0, x1, y1, area, sum_x, sum_y.

    Returns:
        The number of components found (may exceed n_max; only the first n_max are written,
        in raster order of their first run).
    """
    return runs_to_boxes(runs, parent, label_runs(mask, runs, parent), boxes)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def label_runs(mask: np.ndarray, runs: np.ndarray, parent: np.ndarray) -> int:  # pragma: no cover
    """The runs of a 0/1 mask (row, start, end exclusive, in raster order) and their union-find
    forest (8-connected runs joined); returns the number of runs. See :func:`label_components`
    for the scratch arrays' sizes."""
    h, w = mask.shape
    # background is skipped 8 bytes at a time through one uint64 view of the mask (one view:
    # a view per row costs about 15 ns); masks of other widths are scanned byte by byte
    words = mask.view(np.uint64) if w % 8 == 0 else np.empty((h, 0), dtype=np.uint64)
    n_words = words.shape[1]
    n = 0
    prev_lo = 0
    prev_hi = 0
    for i in range(h):
        row = _ptr(mask, i)  # pointers, not views: see _ptr
        wrow = _ptr(words, i)
        cur_lo = n
        anyset = np.uint8(0)
        for j in range(w):
            anyset = np.uint8(anyset | row[j])  # uint8 lanes (|= widens to int64: 3x slower)
        j = 0 if anyset else w
        while j < w:
            if row[j] == 0:
                if j % 8 == 0 and j // 8 < n_words and wrow[j // 8] == 0:
                    j += 8
                else:
                    j += 1
                continue
            s = j
            while j < w and row[j] != 0:
                j += 1
            runs[n, 0] = i
            runs[n, 1] = s
            runs[n, 2] = j
            parent[n] = n
            # union with runs of the previous row touching [s-1, j] (8-connectivity)
            for q in range(prev_lo, prev_hi):
                if runs[q, 2] < s:
                    continue
                if runs[q, 1] > j:
                    break
                ra = _find(parent, q)
                rb = _find(parent, n)
                if ra != rb:
                    if ra < rb:
                        parent[rb] = ra
                    else:
                        parent[ra] = rb
            n += 1
        prev_lo = cur_lo
        prev_hi = n
    return n


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def runs_to_boxes(runs: np.ndarray, parent: np.ndarray, n: int, boxes: np.ndarray) -> int:  # pragma: no cover
    """The boxes of the components of :func:`label_runs`' ``n`` runs (see
    :func:`label_components`); every run's parent is its root afterwards."""
    n_max = boxes.shape[0]
    n_comp = 0
    # roots (the smallest run index of each set) get consecutive ids in raster order
    label = np.empty(n, dtype=np.int32)
    for q in range(n):
        r = _find(parent, q)
        if r == q:
            label[q] = n_comp
            if n_comp < n_max:
                boxes[n_comp, 0] = runs[q, 1]
                boxes[n_comp, 1] = runs[q, 0]
                boxes[n_comp, 2] = runs[q, 2]
                boxes[n_comp, 3] = runs[q, 0] + 1
                boxes[n_comp, 4] = 0
                boxes[n_comp, 5] = 0
                boxes[n_comp, 6] = 0
            n_comp += 1
        else:
            label[q] = label[r]
        k = label[q]
        if k < n_max:
            y = runs[q, 0]
            x0 = runs[q, 1]
            x1 = runs[q, 2]
            length = x1 - x0
            boxes[k, 0] = min(boxes[k, 0], x0)
            boxes[k, 2] = max(boxes[k, 2], x1)
            boxes[k, 3] = max(boxes[k, 3], y + 1)
            boxes[k, 4] += length
            boxes[k, 5] += (x0 + x1 - 1) * length // 2
            boxes[k, 6] += y * length
    return n_comp


@njit(cache=True, nogil=True, fastmath=FASTMATH, inline="always")
def _span_gradient(img: np.ndarray, i: Any, j: Any, h: int, w: int) -> float:  # pragma: no cover
    """|horizontal| + |vertical| difference of ``img`` across (i, j), ``_GHOST_SPAN`` pixels each
    way (the edge repeats outside the frame)."""
    s = _GHOST_SPAN
    gx = abs(np.float64(img[i, min(j + s, w - 1)]) - np.float64(img[i, max(j - s, 0)]))
    gy = abs(np.float64(img[min(i + s, h - 1), j]) - np.float64(img[max(i - s, 0), j]))
    return gx + gy


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _flood_outside(buf: np.ndarray, base: int, hh: int, ww: int, stack: np.ndarray) -> None:  # pragma: no cover
    """In the (hh, ww) box at ``buf[base:]`` (2: the component, 0: not), mark 1 every cell that is
    not the component and joins the box's border through such cells (the border is never the
    component): what is left at 0 is the component's holes."""
    n = 0
    for y in range(hh):
        for x in range(ww):
            if y == 0 or x == 0 or y == hh - 1 or x == ww - 1:
                buf[base + y * ww + x] = 1
                stack[n] = y * ww + x
                n += 1
    while n > 0:
        n -= 1
        c = stack[n]
        y = c // ww
        x = c % ww
        if y > 0 and buf[base + c - ww] == 0:
            buf[base + c - ww] = 1
            stack[n] = c - ww
            n += 1
        if y < hh - 1 and buf[base + c + ww] == 0:
            buf[base + c + ww] = 1
            stack[n] = c + ww
            n += 1
        if x > 0 and buf[base + c - 1] == 0:
            buf[base + c - 1] = 1
            stack[n] = c - 1
            n += 1
        if x < ww - 1 and buf[base + c + 1] == 0:
            buf[base + c + 1] = 1
            stack[n] = c + 1
            n += 1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ghost_reset(  # pragma: no cover
    params: np.ndarray,
    ctl: np.ndarray,
    frame: np.ndarray,
    prev: np.ndarray,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    bg: np.ndarray,
    bg_uv: np.ndarray,
    noise: np.ndarray,
    fg_count: np.ndarray,
    samples: np.ndarray,
    texture: np.ndarray,
    mask: np.ndarray,
    runs: np.ndarray,
    parent: np.ndarray,
    n_runs: int,
) -> int:
    """After :func:`label_runs`: learn the components of ``mask`` that are ghosts (see
    ``_GHOST_AFTER_S``) at once, and clear them from ``mask``. Returns the pixels cleared.

    A ghost's pixels take the frame's value as background, its chroma (when ``P_CHROMA_THR`` is
    on, sampled as motion_step does) as chroma background, a foreground count of 0, and the value
    and texture as every sample. Age: the mean of ``fg_count`` (counted on learning frames, one in
    ``LEARN_EVERY``) reaches ``_GHOST_AFTER_S`` at the frame interval ``C_DT``. The outline is the
    component's pixels with a 4-neighbour in the frame outside the mask and joined to the frame's
    edge through pixels outside the mask (not in a hole), and none whose gradient reaches the
    frame's outer ``_GHOST_SPAN + 1`` rows or columns: the frame's edge is no outline (a person who
    fills the view's lower edge would show the inside of their coat there, against the
    background's edges, as a ghost would), nor is a camera's border. Nothing happens with
    ``P_GHOSTS`` off.

    Args:
        params: float64 vector indexed by ``P_*`` (``P_GHOSTS``, ``P_FLOOR``, ``P_THR_SIGMA``,
            ``P_CHROMA_THR``).
        ctl: the stream's control vector (``C_DT`` read).
        frame: (h, w) uint8 analysis frame (motion_step's ``last``).
        prev: (h, w) uint8 the analysis frame before it.
        chroma_u: the U plane as given to motion_step (a (1, 1) dummy without chroma).
        chroma_v: the V plane, the same shape.
        bg, bg_uv, noise, fg_count, samples, texture: the stream's state (see motion_frame).
        mask: (h, w) uint8 0/1 cleaned mask, changed in place.
        runs, parent: :func:`label_runs`' output for ``mask``, ``n_runs`` runs.
    """
    if params[P_GHOSTS] < 0.5 or n_runs == 0:
        return 0
    h, w = mask.shape
    floor = np.float32(params[P_FLOOR])
    k_sigma = np.float32(params[P_THR_SIGMA])
    need = _GHOST_AFTER_S / (max(ctl[C_DT], 1e-3) * LEARN_EVERY)
    # per component, kept at its root run (an index below n_runs): area, age, pixels that moved
    area = np.zeros(n_runs, dtype=np.float64)
    age = np.zeros(n_runs, dtype=np.float64)
    moved = np.zeros(n_runs, dtype=np.float64)
    top = np.full(n_runs, h, dtype=np.int64)  # and its box, for the holes
    bottom = np.zeros(n_runs, dtype=np.int64)
    left = np.full(n_runs, w, dtype=np.int64)
    right = np.zeros(n_runs, dtype=np.int64)
    for q in range(n_runs):
        r = _find(parent, q)
        i = runs[q, 0]
        top[r] = min(top[r], i)
        bottom[r] = max(bottom[r], i)
        left[r] = min(left[r], runs[q, 1])
        right[r] = max(right[r], runs[q, 2] - 1)
        for j in range(runs[q, 1], runs[q, 2]):
            area[r] += 1.0
            age[r] += fg_count[i, j]
            thr = max(floor, k_sigma * noise[i, j])
            moved[r] += 1.0 if abs(np.float32(frame[i, j]) - np.float32(prev[i, j])) > thr else 0.0
    candidates = 0
    for r in range(n_runs):
        if area[r] > 0.0 and age[r] >= need * area[r] and moved[r] * _GHOST_STILL <= area[r]:
            candidates += 1
        else:
            area[r] = 0.0  # not a candidate (or not a root)
    if candidates == 0:
        return 0
    # each candidate's box with a ring around it, (bottom - top + 3) x (right - left + 3) cells at
    # box[r] in one buffer: the component painted 2, then what joins the ring outside it 1
    box = np.zeros(n_runs, dtype=np.int64)
    total = 0
    largest = 0
    for r in range(n_runs):
        if area[r] > 0.0:
            box[r] = total
            cells = (bottom[r] - top[r] + 3) * (right[r] - left[r] + 3)
            total += cells
            largest = max(largest, cells)
    buf = np.zeros(total, dtype=np.uint8)
    for q in range(n_runs):
        r = parent[q]  # a root since the pass above (_find compresses every path)
        if area[r] > 0.0:
            row = box[r] + (runs[q, 0] - top[r] + 1) * (right[r] - left[r] + 3) - left[r] + 1
            for j in range(runs[q, 1], runs[q, 2]):
                buf[row + j] = 2
    stack = np.empty(largest, dtype=np.int64)
    for r in range(n_runs):
        if area[r] > 0.0:
            _flood_outside(buf, box[r], bottom[r] - top[r] + 3, right[r] - left[r] + 3, stack)
    e_frame = np.zeros(n_runs, dtype=np.float64)
    e_bg = np.zeros(n_runs, dtype=np.float64)
    for q in range(n_runs):
        r = parent[q]
        if area[r] == 0.0:
            continue
        i = runs[q, 0]
        a = runs[q, 1]
        z = runs[q, 2]
        if i <= _GHOST_SPAN or i >= h - 1 - _GHOST_SPAN:
            continue
        ww = right[r] - left[r] + 3
        row = box[r] + (i - top[r] + 1) * ww - left[r] + 1  # buf[row + j] is pixel (i, j)
        for j in range(max(a, _GHOST_SPAN + 1), min(z, w - 1 - _GHOST_SPAN)):
            outline = (
                (j == a and buf[row + j - 1] == 1) or (j == z - 1 and buf[row + j + 1] == 1)
                or buf[row + j - ww] == 1 or buf[row + j + ww] == 1
            )  # fmt: skip
            if outline:
                e_frame[r] += _span_gradient(frame, i, j, h, w)
                e_bg[r] += _span_gradient(bg, i, j, h, w)
    use_chroma = params[P_CHROMA_THR] > 0.0
    n_samples = samples.shape[2]
    cleared = 0
    for q in range(n_runs):
        r = parent[q]
        if area[r] == 0.0 or not e_bg[r] > _GHOST_EDGES * e_frame[r]:
            continue
        i = runs[q, 0]
        for j in range(runs[q, 1], runs[q, 2]):
            x = frame[i, j]
            bg[i, j] = np.float32(x)
            if use_chroma:
                bg_uv[0, i, j] = _chroma_at(chroma_u, i, j, h, w)
                bg_uv[1, i, j] = _chroma_at(chroma_v, i, j, h, w)
            fg_count[i, j] = 0.0
            d16 = _lbsp(frame, i, j)
            for k in range(n_samples):
                samples[i, j, k] = x
                texture[i, j, k] = d16
            mask[i, j] = 0
            cleared += 1
    return cleared


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def select_boxes(boxes: np.ndarray, n: int, min_area: int, keep: int) -> int:  # pragma: no cover
    """Keep the components of ``boxes[:n]`` with area >= ``min_area``, largest first.

    Rows move to the top of ``boxes`` in order of decreasing area (equal areas keep their order),
    at most ``keep`` of them; returns how many. Done here rather than in Python because each
    Python step of the per-frame wrapper costs microseconds when its code is cold in cache.
    """
    n = min(n, boxes.shape[0])
    k = 0
    for q in range(n):
        area = boxes[q, 4]
        if area < min_area:
            continue
        pos = k
        while pos > 0 and boxes[pos - 1, 4] < area:
            pos -= 1
        if pos >= keep:
            continue
        x0, y0, x1, y1, sx, sy = boxes[q, 0], boxes[q, 1], boxes[q, 2], boxes[q, 3], boxes[q, 5], boxes[q, 6]
        # rows pos .. k - 1 move down one; row k is q itself or a row already dealt with (k <= q)
        for r in range(min(k, keep - 1), pos, -1):
            for c in range(BOX_FIELDS):
                boxes[r, c] = boxes[r - 1, c]
        boxes[pos, 0] = x0
        boxes[pos, 1] = y0
        boxes[pos, 2] = x1
        boxes[pos, 3] = y1
        boxes[pos, 4] = area
        boxes[pos, 5] = sx
        boxes[pos, 6] = sy
        k = min(k + 1, keep)
    return k


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def zone_counts(mask: np.ndarray, zone_bits: np.ndarray, counts: np.ndarray) -> None:  # pragma: no cover
    """Foreground pixels per zone: ``counts[z]`` += 1 for every set pixel whose bit z is set."""
    h, w = mask.shape
    nz = counts.shape[0]
    counts[:] = 0
    for i in range(h):
        for j in range(w):
            if mask[i, j] != 0:
                bits = zone_bits[i, j]
                if bits != 0:
                    for z in range(nz):
                        if (bits >> np.uint32(z)) & np.uint32(1):
                            counts[z] += 1


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def tamper_stats(cur: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """Whole-frame statistics for tamper tests on small float32 frames (same shape).

    Writes mean and standard deviation of ``cur``; mean gradient magnitude (|dx| + |dy|, forward
    differences) and mean |4-neighbour Laplacian| of both frames over the interior; and the Pearson
    correlation of the two gradient-magnitude images (0 when either is flat).
    """
    h, w = cur.shape
    n = h * w
    s = 0.0
    s2 = 0.0
    for i in range(h):
        for j in range(w):
            v = np.float64(cur[i, j])
            s += v
            s2 += v * v
    mean = s / n
    var = max(0.0, s2 / n - mean * mean)
    e_c = 0.0
    e_r = 0.0
    l_c = 0.0
    l_r = 0.0
    sab = 0.0
    saa = 0.0
    sbb = 0.0
    m = 0
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            gc = abs(np.float64(cur[i, j + 1]) - cur[i, j]) + abs(np.float64(cur[i + 1, j]) - cur[i, j])
            gr = abs(np.float64(ref[i, j + 1]) - ref[i, j]) + abs(np.float64(ref[i + 1, j]) - ref[i, j])
            lc = abs(4.0 * cur[i, j] - np.float64(cur[i - 1, j]) - cur[i + 1, j] - cur[i, j - 1] - cur[i, j + 1])
            lr = abs(4.0 * ref[i, j] - np.float64(ref[i - 1, j]) - ref[i + 1, j] - ref[i, j - 1] - ref[i, j + 1])
            e_c += gc
            e_r += gr
            l_c += lc
            l_r += lr
            sab += gc * gr
            saa += gc * gc
            sbb += gr * gr
            m += 1
    out[0] = mean
    out[1] = np.sqrt(var)
    if m == 0:
        out[2] = 0.0
        out[3] = 0.0
        out[4] = 0.0
        out[5] = 0.0
        out[6] = 0.0
        return
    out[2] = e_c / m
    out[3] = l_c / m
    out[4] = e_r / m
    out[5] = l_r / m
    ma = e_c / m
    mb = e_r / m
    cov = sab / m - ma * mb
    va = saa / m - ma * ma
    vb = sbb / m - mb * mb
    if va <= 1e-9 or vb <= 1e-9:
        out[6] = 0.0
    else:
        out[6] = cov / np.sqrt(va * vb)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _gradient_magnitude(img: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """|dx| + |dy| (forward differences) of the interior of ``img`` into ``out`` (h - 2, w - 2):
    the map :func:`tamper_stats` correlates, which computes it inline in its single pass."""
    h, w = img.shape
    for i in range(1, h - 1):
        row = img[i]
        below = img[i + 1]
        orow = out[i - 1]
        for j in range(1, w - 1):
            orow[j - 1] = abs(row[j + 1] - row[j]) + abs(below[j] - row[j])


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _box_sums(g: np.ndarray, radius: int, tmp: np.ndarray) -> None:  # pragma: no cover
    """Sums of ``g`` over every (2r+1)^2 window that fits, in place: ``g[i, j]`` for ``i`` and
    ``j`` at least ``radius`` from the edges becomes the sum around it (the rest is stale).

    Offsets outside, columns inside, every index counted from a slice's start: LLVM then sees
    that no index is negative and vectorises the adds (with offset indices the whole
    comparison took 5 to 6 times as long).
    """
    h, w = g.shape
    k = 2 * radius + 1
    n = w - 2 * radius
    for i in range(h):
        row = g[i]
        dst = tmp[i][radius:]
        for j in range(n):
            dst[j] = row[j]
        for o in range(1, k):
            src = row[o:]
            for j in range(n):
                dst[j] += src[j]
    for i in range(radius, h - radius):
        dst = g[i][radius:]
        src = tmp[i - radius][radius:]
        for j in range(n):
            dst[j] = src[j]
        for o in range(1, k):
            src = tmp[i - radius + o][radius:]
            for j in range(n):
                dst[j] += src[j]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def blurred_edge_correlation(  # pragma: no cover
    cur: np.ndarray, ref: np.ndarray, radius: int, scratch: np.ndarray
) -> float:
    """Pearson correlation of the gradient magnitudes of ``cur`` and ``ref`` (as in
    :func:`tamper_stats`), each first summed over (2r+1)^2 boxes (r = ``radius``).

    A shaking camera sees its view a few pixels off the learned one, and the learned view itself
    is an average over those offsets: sharp edge maps then barely correlate. Blurred over about
    the shake's size they still do, while a view turned by a few times that does not.
    ``scratch`` is a float32 (3, h - 2, w - 2) array. Compared over the maps' part at least
    ``radius`` from every side; 0 when that part is empty or flat.
    """
    h, w = cur.shape
    gh, gw = h - 2, w - 2
    if gh - 2 * radius < 1 or gw - 2 * radius < 1:
        return 0.0
    gc = scratch[0]
    gr = scratch[1]
    _gradient_magnitude(cur, gc)
    _gradient_magnitude(ref, gr)
    _box_sums(gc, radius, scratch[2])
    _box_sums(gr, radius, scratch[2])
    n = (gh - 2 * radius) * (gw - 2 * radius)
    sa = 0.0
    sb = 0.0
    saa = 0.0
    sbb = 0.0
    sab = 0.0
    m = gw - 2 * radius
    for i in range(radius, gh - radius):
        arow = gc[i][radius:]
        brow = gr[i][radius:]
        for j in range(m):
            a = np.float64(arow[j])
            b = np.float64(brow[j])
            sa += a
            sb += b
            saa += a * a
            sbb += b * b
            sab += a * b
    ma = sa / n
    mb = sb / n
    va = saa / n - ma * ma
    vb = sbb / n - mb * mb
    if va <= 1e-9 * max(1.0, ma * ma) or vb <= 1e-9 * max(1.0, mb * mb):
        return 0.0
    return float((sab / n - ma * mb) / np.sqrt(va * vb))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def plane_spread(plane: np.ndarray, step: int) -> float:  # pragma: no cover
    """Standard deviation of a uint8 ``plane`` over every ``step``-th row and column (from 0).

    Integer sums, so the result does not depend on the order of summation.
    """
    h, w = plane.shape
    s = np.int64(0)
    s2 = np.int64(0)
    for i in range(0, h, step):
        row = plane[i]
        for j in range(0, w, step):
            v = np.int64(row[j])
            s += v
            s2 += v * v
    n = ((h + step - 1) // step) * ((w + step - 1) // step)
    if n == 0:
        return 0.0
    mean = s / n
    return float(np.sqrt(max(0.0, s2 / n - mean * mean)))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _bilinear_weights(sx: float, sy: float) -> tuple[int, int, float, float, float, float]:  # pragma: no cover
    """A shift's whole pixels (floor) across and down, and the weights of the four neighbours
    (top-left, top-right, bottom-left, bottom-right) its fractions give."""
    ix = int(np.floor(sx))
    iy = int(np.floor(sy))
    fx = sx - ix
    fy = sy - iy
    return ix, iy, (1.0 - fx) * (1.0 - fy), fx * (1.0 - fy), (1.0 - fx) * fy, fx * fy


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def shift_sample(src: np.ndarray, sx: float, sy: float, out: np.ndarray) -> None:  # pragma: no cover
    """``out[i, j]`` = ``src`` at (i + sy, j + sx), bilinear, rounded to uint8; outside the plane
    its edge rows and columns repeat (coordinates clamped).

    ``out`` is uint8 of ``src``'s shape; ``src`` is uint8 or float32 (values within 0..255). The
    shift is the same for every pixel, so the four weights are too: the inner loop is four
    contiguous reads and a weighted sum, vectorised, except near the plane's edges.
    """
    h, w = out.shape
    ix, iy, w00, w01, w10, w11 = _bilinear_weights(sx, sy)
    jlo = min(w, max(0, -ix))  # columns whose two samples lie inside: jlo <= j < jhi
    jhi = max(jlo, min(w, w - 1 - ix))
    for i in range(h):
        r0 = src[min(h - 1, max(0, i + iy))]
        r1 = src[min(h - 1, max(0, i + iy + 1))]
        orow = out[i]
        n = jhi - jlo
        a0 = r0[jlo + ix : jlo + ix + n]
        a1 = r0[jlo + ix + 1 : jlo + ix + 1 + n]
        b0 = r1[jlo + ix : jlo + ix + n]
        b1 = r1[jlo + ix + 1 : jlo + ix + 1 + n]
        o = orow[jlo:jhi]
        for k in range(n):
            v = w00 * a0[k] + w01 * a1[k] + w10 * b0[k] + w11 * b1[k] + 0.5
            o[k] = np.uint8(min(255.0, max(0.0, v)))
        for j in range(w):  # the edge columns, clamped
            if jlo <= j < jhi:
                continue
            c0 = min(w - 1, max(0, j + ix))
            c1 = min(w - 1, max(0, j + ix + 1))
            v = w00 * r0[c0] + w01 * r0[c1] + w10 * r1[c0] + w11 * r1[c1] + 0.5
            orow[j] = np.uint8(min(255.0, max(0.0, v)))


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def lk_step(
    cur: np.ndarray, bg: np.ndarray, sx: float, sy: float, max_diff: float, out: np.ndarray
) -> None:  # pragma: no cover
    """Sums of one Lucas-Kanade step for a global shift of ``cur`` against ``bg`` (float32, same shape).

    Over the pixels two or more from the border whose sample of ``cur`` at (i + sy, j + sx) lies
    inside it, with ``d`` = that bilinear sample minus ``bg`` and (gx, gy) the background's central
    differences, pixels with |d| >= ``max_diff`` (objects, not shake) left out: ``out`` =
    (sum gx gx, sum gx gy, sum gy gy, sum gx d, sum gy d, sum gx, sum gy, sum d, count). The last
    four let the caller solve for a brightness offset too, so that a view that brightens (a
    relearning background, lights) does not read as a shift.
    """
    h, w = bg.shape
    ix, iy, w00, w01, w10, w11 = _bilinear_weights(sx, sy)
    jlo = max(2, -ix)
    jhi = min(w - 2, w - 1 - ix)
    ilo = max(2, -iy)
    ihi = min(h - 2, h - 1 - iy)
    sxx = 0.0
    sxy = 0.0
    syy = 0.0
    sxd = 0.0
    syd = 0.0
    sgx = 0.0
    sgy = 0.0
    sd = 0.0
    count = 0.0
    n = jhi - jlo
    for i in range(ilo, ihi):
        if n <= 0:
            break
        r0 = cur[i + iy]
        r1 = cur[i + iy + 1]
        a0 = r0[jlo + ix : jlo + ix + n]
        a1 = r0[jlo + ix + 1 : jlo + ix + 1 + n]
        b0 = r1[jlo + ix : jlo + ix + n]
        b1 = r1[jlo + ix + 1 : jlo + ix + 1 + n]
        here = bg[i][jlo : jlo + n]
        left = bg[i][jlo - 1 : jlo - 1 + n]
        right = bg[i][jlo + 1 : jlo + 1 + n]
        up = bg[i - 1][jlo : jlo + n]
        down = bg[i + 1][jlo : jlo + n]
        for k in range(n):
            d = w00 * a0[k] + w01 * a1[k] + w10 * b0[k] + w11 * b1[k] - here[k]
            keep = 1.0 if abs(d) < max_diff else 0.0
            gx = 0.5 * (np.float64(right[k]) - left[k]) * keep
            gy = 0.5 * (np.float64(down[k]) - up[k]) * keep
            sxx += gx * gx
            sxy += gx * gy
            syy += gy * gy
            sxd += gx * d
            syd += gy * d
            sgx += gx
            sgy += gy
            sd += d * keep
            count += keep
    out[0] = sxx
    out[1] = sxy
    out[2] = syy
    out[3] = sxd
    out[4] = syd
    out[5] = sgx
    out[6] = sgy
    out[7] = sd
    out[8] = count


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def follow_map(inv: np.ndarray, src: np.ndarray) -> int:  # pragma: no cover
    """Where each pixel of a model that follows the camera comes from: ``src[i, j]`` = the flat
    index ``y * w + x`` of the old model's pixel nearest to ``inv`` applied to (j, i) (``inv``, a
    2 x 3 affine map from this frame's pixels (x, y) to the old model's), or -1 where that lies
    outside (the view the camera brought in). Returns the number of such pixels.
    """
    h, w = src.shape
    a, b, c = inv[0, 0], inv[0, 1], inv[0, 2]
    d, e, f = inv[1, 0], inv[1, 1], inv[1, 2]
    fresh = 0
    for i in range(h):
        for j in range(w):
            x = int(np.floor(a * j + b * i + c + 0.5))
            y = int(np.floor(d * j + e * i + f + 0.5))
            inside = 0 <= x < w and 0 <= y < h
            src[i, j] = y * w + x if inside else -1
            fresh += 0 if inside else 1
    return fresh


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def gather_pixels(a: np.ndarray, tmp: np.ndarray, src: np.ndarray) -> None:  # pragma: no cover
    """A per-pixel state array moved with the camera in place: ``a`` holds one element a pixel,
    (h * w,) (a plane, or a pixel's set of values viewed as one wider element: a loop over a
    pixel's values cost more than the move), and pixel p takes the old ``a``'s pixel ``src[p]``
    (``src`` from :func:`follow_map`, flattened); pixels with ``src`` -1 keep their values (the
    caller renews them). ``tmp`` is scratch of ``a``'s length and dtype (overwritten)."""
    n = a.shape[0]
    for p in range(n):  # not tmp[:] = a: numba's slice copy took as long as the whole move
        tmp[p] = a[p]
    for p in range(n):
        k = src[p]
        if k >= 0:
            a[p] = tmp[k]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def renew_pixels(  # pragma: no cover
    frame: np.ndarray,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    use_chroma: bool,
    src: np.ndarray,
    noise_init: float,
    ctl: np.ndarray,
    state: MotionState,
) -> None:
    """After the model moved with the camera (:func:`gather_pixels` on each state array): the
    pixels the camera brought into view (``src`` -1) learned from ``frame`` as a first frame
    learns them: background and last frames the frame's values, noise ``noise_init``, no
    foreground count, background chroma from the planes (neutral without), sample
    sets drawn around each pixel (offsets ``_SPREAD``, random state ``C_RNG``) with their
    textures. The slope is left to the caller (:func:`background_slope`).

    Args:
        frame: (h, w) uint8 analysis frame.
        chroma_u: the U plane as motion_step reads it, or a (1, 1) dummy.
        chroma_v: the V plane, the same shape.
        use_chroma: the planes are real.
        src: (h, w) int32 from :func:`follow_map`.
        noise_init: per-pixel noise of a pixel that has not learned any.
        ctl: the stream's control vector (``C_RNG`` advanced here).
        state: motion_frame's per-stream arrays.
    """
    bg, noise, bg_uv, fg_count, _slope, raw, last, prev, samples, texture = state
    h, w = bg.shape
    n = samples.shape[2]
    rng = np.uint64(ctl[C_RNG])
    if rng == 0:
        rng = np.uint64(RNG_SEED)
    for i in range(h):
        for j in range(w):
            if src[i, j] >= 0:
                continue
            v = frame[i, j]
            bg[i, j] = np.float32(v)
            noise[i, j] = np.float32(noise_init)
            bg_uv[0, i, j] = _chroma_at(chroma_u, i, j, h, w) if use_chroma else np.float32(0.0)
            bg_uv[1, i, j] = _chroma_at(chroma_v, i, j, h, w) if use_chroma else np.float32(0.0)
            fg_count[i, j] = np.float32(0.0)
            raw[i, j] = _RAW_BG
            last[i, j] = v
            prev[i, j] = v
            for k in range(n):
                rng, ii, jj = _spread_draw(rng, i, j, h, w)
                samples[i, j, k] = frame[ii, jj]
                texture[i, j, k] = _lbsp(frame, ii, jj)
    ctl[C_RNG] = np.float64(rng)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def frame_control(params: np.ndarray, ctl: np.ndarray) -> None:  # pragma: no cover
    """Before a frame: the per-frame entries of ``params`` from the settings and the stream state.

    Writes ``P_FLOOR``, ``P_CHROMA_THR``, ``P_ABSORB_FRAMES``, ``P_ALPHA``, ``P_RELEARN``,
    ``P_REPORT``, ``P_LEARN_ROWS`` and ``P_CHROMA_REF``; updates the frame interval and ``C_FIRST`` /
    ``C_RELEARNING`` in ``ctl``. In the kernel rather than the Python wrapper because each Python
    step costs microseconds per frame when its code and data are cold in cache, as they are
    between other streams' work.
    """
    t = ctl[C_T]
    use_chroma = ctl[C_CHROMA] > 0.5
    frames = ctl[C_FRAMES]
    if frames > 0 and t > ctl[C_T_LAST]:
        ctl[C_DT] += 0.1 * (min(t - ctl[C_T_LAST], 5.0) - ctl[C_DT])
    ctl[C_T_LAST] = t
    first = frames == 0 or (use_chroma and ctl[C_CHROMA_SEEN] < 0.5)
    relearning = t < ctl[C_RELEARN_UNTIL]
    params[P_FLOOR] = max(params[P_MIN_THRESHOLD], params[P_FLOOR_GAIN] * ctl[C_IDLE_LEVEL])
    params[P_CHROMA_THR] = params[P_CHROMA_SETTING] if use_chroma else 0.0
    params[P_ABSORB_FRAMES] = min(65000.0, params[P_ABSORB_S] / ctl[C_DT])
    if first:
        params[P_ALPHA] = 1.0
        params[P_RELEARN] = 1.0
    elif relearning:
        # fast enough that what is left of the old view after P_RELEARN_S is _RELEARN_LEFT of
        # it at this frame rate: at 25 fps 0.25 a frame is plenty, but at the daemon's 5 fps
        # (five frames in a 1 s window) it left a quarter of a lights switch, which became motion
        per_frame = 1.0 - _RELEARN_LEFT ** (ctl[C_DT] / max(params[P_RELEARN_S], 1e-3))
        params[P_ALPHA] = max(params[P_BG_ALPHA], 0.25, per_frame)
        params[P_RELEARN] = 1.0
    else:
        # learn fast while the model is young, then at the configured rate
        params[P_ALPHA] = max(params[P_BG_ALPHA], 1.0 / (frames + 1))
        params[P_RELEARN] = 0.0
    params[P_REPORT] = 0.0 if (first or relearning) else 1.0
    # One row in LEARN_EVERY learns on each frame, the others in turn on the next. A row's test
    # needs every frame, its learning does not: the background moves by a few percent of a difference a
    # frame, and learning is a third of motion_step's time (its stores and updates).
    alternate = not (first or relearning) and params[P_ALPHA] <= _ALTERNATE_BELOW
    params[P_LEARN_ROWS] = (1.0 + frames % LEARN_EVERY) if alternate else 0.0
    params[P_CHROMA_REF] = ctl[C_CHROMA_LEVEL]
    ctl[C_FIRST] = 1.0 if first else 0.0
    ctl[C_RELEARNING] = 1.0 if relearning else 0.0


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def frame_feedback(  # pragma: no cover
    params: np.ndarray, ctl: np.ndarray, stats: np.ndarray, fg_count: np.ndarray, n_boxes: int
) -> None:
    """After a frame: count it, learn the idle level, and open a relearning window on a global change.

    ``n_boxes`` is what the frame returned (-1: no mask). A global change is a frame without a
    mask, or the frame that ends ``GLOBAL_HOLD_S`` of frames with more than ``P_GLOBAL`` raw
    foreground (``C_CHANGED_FOR``), that was neither learned as new nor relearning: ``C_GLOBAL``
    is set, relearning lasts ``P_RELEARN_S`` from now, and every pixel's foreground count
    restarts. A frame with chroma
    moves ``C_CHROMA_LEVEL`` towards its coloured fraction, or sets it outright on a new view.
    """
    first = ctl[C_FIRST] > 0.5
    relearning = ctl[C_RELEARNING] > 0.5
    ctl[C_FRAMES] += 1.0
    if ctl[C_CHROMA] > 0.5:
        ctl[C_CHROMA_SEEN] = 1.0
    idle_n = stats[S_IDLE_COUNT]
    raw_fraction = stats[S_FG] / fg_count.size
    if idle_n > 0 and raw_fraction < params[P_IDLE_FRACTION] and not relearning:
        ctl[C_IDLE_LEVEL] += params[P_IDLE_ALPHA] * (stats[S_IDLE_ABSDIFF] / idle_n - ctl[C_IDLE_LEVEL])
    ctl[C_GLOBAL] = 0.0
    changed = raw_fraction > params[P_GLOBAL] and not first and not relearning
    ctl[C_CHANGED_FOR] = ctl[C_CHANGED_FOR] + ctl[C_DT] if changed else 0.0
    held = ctl[C_CHANGED_FOR] >= GLOBAL_HOLD_S
    global_change = (n_boxes < 0 or held) and not first and not relearning
    if global_change:
        ctl[C_CHANGED_FOR] = 0.0
        ctl[C_GLOBAL] = 1.0
        ctl[C_RELEARN_UNTIL] = ctl[C_T] + params[P_RELEARN_S]
        fg_count[:] = 0
    if ctl[C_CHROMA] > 0.5:
        level = ctl[C_CHROMA_LEVEL]
        if level < 0.0 or first or relearning or global_change:  # a new view: its level anew
            ctl[C_CHROMA_LEVEL] = stats[S_CHROMA]
        else:
            ctl[C_CHROMA_LEVEL] = level + _CHROMA_LEVEL_ALPHA * (stats[S_CHROMA] - level)


# motion_frame's per-stream arrays: bg, noise, bg_uv, fg_count, slope, raw_mask, last, prev, samples, texture
MotionState = tuple[np.ndarray, ...]


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def motion_frame(  # pragma: no cover
    luma: np.ndarray,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    use_chroma: bool,
    t: float,
    f: int,
    params: np.ndarray,
    ctl: np.ndarray,
    state: MotionState,
    ignore: np.ndarray,
    mask: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
    boxes: np.ndarray,
    stats: np.ndarray,
) -> int:
    """The whole motion stage in one call: :func:`frame_control`, :func:`motion_step`,
    :func:`sample_veto`, :func:`veil_test`, clean-up, labelling, :func:`ghost_reset`, selection,
    :func:`frame_feedback`.

    ``use_chroma`` says whether the chroma planes are real (else (1, 1) dummies) and ``t`` is the
    frame's timestamp; both go into ``ctl``, the stream's control vector (``C_*``). ``state`` is
    ``(bg, noise, bg_uv, fg_count, slope, raw_mask, last, prev, samples, texture)`` (``prev``: the
    analysis frame before ``last``, for :func:`ghost_reset`) and ``scratch`` is
    ``(colsum, runs, parent)`` as for the kernels called. Returns the number of boxes kept by
    :func:`select_boxes` (``P_MIN_AREA``, ``P_MAX_BOXES``), at the top of ``boxes``, or -1 when
    the mask was not produced (``P_REPORT`` off, or a global change: more than ``P_GLOBAL`` of the
    frame in raw foreground while the old view still explains it, see ``GLOBAL_EXPLAINED``, or
    its colour lost or gained at once with its structure kept, see ``COLOUR_WIDE``); ``mask``
    is then all zero. After every ``SLOPE_EVERY``-th frame (``C_FRAMES`` before it a multiple)
    ``slope`` is refreshed from the learned background.
    """
    ctl[C_T] = t
    ctl[C_CHROMA] = 1.0 if use_chroma else 0.0
    frame_control(params, ctl)
    n = _detect(luma, f, chroma_u, chroma_v, params, ctl, state, ignore, mask, scratch, boxes, stats)
    if ctl[C_FRAMES] % SLOPE_EVERY == 0:
        background_slope(state[0], state[4])
    frame_feedback(params, ctl, stats, state[3], n)
    return n


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _colour_jump(params: np.ndarray, stats: np.ndarray) -> bool:  # pragma: no cover
    """The view lost or gained its colour in this frame and kept its structure (see ``COLOUR_WIDE``)."""
    ref = params[P_CHROMA_REF]
    if params[P_CHROMA_THR] <= 0.0 or ref < 0.0 or stats[S_CORR] * stats[S_CORR] <= GLOBAL_EXPLAINED:
        return False
    now = float(stats[S_CHROMA])
    return (ref >= COLOUR_WIDE and now < COLOUR_NARROW) or (ref < COLOUR_NARROW and now >= COLOUR_WIDE)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _detect(  # pragma: no cover
    luma: np.ndarray,
    f: int,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    params: np.ndarray,
    ctl: np.ndarray,
    state: MotionState,
    ignore: np.ndarray,
    mask: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
    boxes: np.ndarray,
    stats: np.ndarray,
) -> int:
    """:func:`motion_frame` between control and feedback: step, sample veto, veil test, clean-up,
    labelling, ghosts, selection."""
    bg, noise, bg_uv, fg_count, slope, raw, last, prev, samples, texture = state
    colsum, runs, parent = scratch
    prev[:] = last
    motion_step(luma, f, chroma_u, chroma_v, params, bg, noise, bg_uv, fg_count, slope, raw, last, stats)
    # the labelling's scratch, free until the clean-up, holds the textures of a new view
    desc = parent.view(np.uint16)[: raw.size].reshape(raw.shape)
    sample_veto(params, ctl, last, chroma_u, chroma_v, bg_uv, noise, raw, samples, texture, desc)
    veil_test(params, last, bg, noise, raw, stats[S_FG], mask, runs, parent)
    h, w = bg.shape
    stats[S_MASK] = 0
    relit = stats[S_FG] > params[P_GLOBAL] * h * w and stats[S_CORR] * stats[S_CORR] > GLOBAL_EXPLAINED
    if params[P_REPORT] < 0.5 or relit or _colour_jump(params, stats):
        mask[:] = 0
        return -1
    n_set = majority_filter(raw, int(params[P_RADIUS]), ignore, mask, colsum)
    stats[S_MASK] = n_set
    if n_set == 0:
        return 0
    n_runs = label_runs(mask, runs, parent)
    cleared = ghost_reset(
        params, ctl, last, prev, chroma_u, chroma_v, bg, bg_uv, noise, fg_count, samples, texture, mask, runs, parent,
        n_runs,
    )  # fmt: skip
    if cleared > 0:
        n_set -= cleared
        stats[S_MASK] = n_set
        if n_set == 0:
            return 0
        n_runs = label_runs(mask, runs, parent)
    n_comp = runs_to_boxes(runs, parent, n_runs, boxes)
    return select_boxes(boxes, n_comp, int(params[P_MIN_AREA]), int(params[P_MAX_BOXES]))
