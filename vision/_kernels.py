"""numba kernels of the vision stage: pure functions over preallocated arrays.

Every kernel is ``@njit(cache=True, nogil=True, fastmath=FASTMATH)``: no objects, no I/O, no
allocation of frame-sized arrays. They release the GIL, so the daemon runs them through
``asyncio.to_thread`` while the event loop keeps serving. Inputs are checked by the typed wrappers
in :mod:`vision._checks` and the public classes, never here.

Parameter vectors are float64 arrays indexed by the ``P_*`` constants below, so that kernels keep a
short, stable signature.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "FASTMATH",
    "N_STATS",
    "P_ABSORB_ALPHA",
    "P_ABSORB_FRAMES",
    "P_ALPHA",
    "P_BLUR",
    "P_CHROMA_THR",
    "P_FLOOR",
    "P_NOISE_ALPHA",
    "P_RELEARN",
    "P_SHADOW_CHROMA",
    "P_SHADOW_HI",
    "P_SHADOW_LO",
    "P_THR_SIGMA",
    "P_WEAK",
    "S_CHANGED_BLOCKS",
    "S_DARKER",
    "S_FG",
    "S_IDLE_ABSDIFF",
    "S_IDLE_COUNT",
    "S_BRIGHTER",
    "T_CORR",
    "T_DETAIL",
    "T_EDGE",
    "T_MEAN",
    "T_REF_DETAIL",
    "T_REF_EDGE",
    "T_STD",
    "N_TAMPER_STATS",
    "BOX_FIELDS",
    "downscale_area",
    "label_components",
    "majority_filter",
    "motion_step",
    "tamper_stats",
    "zone_counts",
]

# The one place fastmath is chosen. "contract"/"arcp"-style relaxations keep results within float
# rounding of the NumPy references; no NaN can reach a kernel (inputs are uint8), so "nnan"/"ninf"
# are safe too.
FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc"}

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
N_PARAMS = 13

# motion_step statistics vector
S_FG = 0  # foreground pixels (raw)
S_BRIGHTER = 1  # foreground pixels brighter than background
S_DARKER = 2  # foreground pixels darker than background
S_IDLE_ABSDIFF = 3  # sum of |diff| over background pixels
S_IDLE_COUNT = 4  # number of background pixels
S_CHANGED_BLOCKS = 5  # analysis pixels whose block sum changed since the previous frame
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


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def downscale_area(luma: np.ndarray, f: int, out: np.ndarray) -> None:  # pragma: no cover
    """Mean of each f x f block of ``luma`` (uint8) into ``out`` (float32, shape (H//f, W//f))."""
    h, w = out.shape
    inv = np.float32(1.0 / (f * f))
    acc = np.zeros(w, dtype=np.int32)
    for i in range(h):
        acc[:] = 0
        for r in range(i * f, i * f + f):
            row = luma[r]
            for j in range(w):
                s = np.int32(0)
                base = j * f
                for k in range(f):
                    s += np.int32(row[base + k])
                acc[j] += s
        for j in range(w):
            out[i, j] = np.float32(acc[j]) * inv


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def motion_step(  # noqa: PLR0913  # pragma: no cover
    luma: np.ndarray,
    f: int,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    params: np.ndarray,
    padded: np.ndarray,
    bg: np.ndarray,
    noise: np.ndarray,
    bg_uv: np.ndarray,
    fg_count: np.ndarray,
    raw_mask: np.ndarray,
    stats: np.ndarray,
) -> None:
    """One frame of motion detection, fused: downscale, blur, test, update.

    Args:
        luma: (H, W) uint8 luma plane of the decoded frame.
        f: integer area-downscale factor; the analysis frame is (H // f, W // f).
        chroma_u: (Hc, Wc) uint8 U plane (any subsampling), or a (1, 1) dummy when chroma is off.
        chroma_v: same shape as ``chroma_u``.
        params: float64 vector indexed by ``P_*``.
        padded: (h + 2, w + 2) float32 scratch; holds the block sums of the previous frame's
            analysis pixels in its interior on entry (frozen-stream test) and this frame's on exit.
        bg: (h, w) float32 background luma.
        noise: (h, w) float32 per-pixel noise (running mean absolute deviation).
        bg_uv: (2, h, w) float32 background chroma.
        fg_count: (h, w) uint16 per-pixel foreground count: +1 on foreground, -1 on background.
        raw_mask: (h, w) uint8 output: 2 foreground, 1 shadow or weak difference, 0 background.
        stats: float64 vector indexed by ``S_*`` (overwritten).
    """
    h, w = bg.shape
    inv = np.float32(1.0 / (f * f))
    # 1. area downscale into the padded interior, counting changed blocks (frozen test)
    changed = 0
    acc = np.zeros(w, dtype=np.int32)
    for i in range(h):
        acc[:] = 0
        for r in range(i * f, i * f + f):
            row = luma[r]
            for j in range(w):
                s = np.int32(0)
                base = j * f
                for k in range(f):
                    s += np.int32(row[base + k])
                acc[j] += s
        prow = padded[i + 1]
        for j in range(w):
            v = np.float32(acc[j]) * inv
            if v != prow[j + 1]:
                changed += 1
            prow[j + 1] = v
    # replicate borders so the blur needs no branches
    for i in range(1, h + 1):
        padded[i, 0] = padded[i, 1]
        padded[i, w + 1] = padded[i, w]
    for j in range(w + 2):
        padded[0, j] = padded[1, j]
        padded[h + 1, j] = padded[h, j]

    k_sigma = np.float32(params[P_THR_SIGMA])
    floor = np.float32(params[P_FLOOR])
    cthr = np.float32(params[P_CHROMA_THR])
    alpha = np.float32(params[P_ALPHA])
    nalpha = np.float32(params[P_NOISE_ALPHA])
    absorb_frames = np.int32(params[P_ABSORB_FRAMES])
    absorb_alpha = np.float32(params[P_ABSORB_ALPHA])
    relearn = params[P_RELEARN] > 0.5
    sh_lo = np.float32(params[P_SHADOW_LO])
    sh_hi = np.float32(params[P_SHADOW_HI])
    sh_c = np.float32(params[P_SHADOW_CHROMA])
    blur = params[P_BLUR] > 0.5
    weak = np.float32(params[P_WEAK])
    use_chroma = cthr > 0.0
    hc, wc = chroma_u.shape
    n_fg = 0
    n_bright = 0
    n_dark = 0
    idle_sum = 0.0
    idle_n = 0
    # chroma sampling: analysis pixel centre -> chroma plane, nearest
    sy = hc / (h * f) if use_chroma else 0.0
    sx = wc / (w * f) if use_chroma else 0.0
    u_bg = bg_uv[0]
    v_bg = bg_uv[1]
    for i in range(h):
        p0 = padded[i]
        p1 = padded[i + 1]
        p2 = padded[i + 2]
        ci = min(hc - 1, int((i * f + 0.5 * f) * sy)) if use_chroma else 0
        for j in range(w):
            # 2. light blur: 3x3 binomial
            x = p1[j + 1]
            if blur:
                x = (
                p0[j]
                + p0[j + 2]
                + p2[j]
                + p2[j + 2]
                + np.float32(2.0) * (p0[j + 1] + p1[j] + p1[j + 2] + p2[j + 1])
                + np.float32(4.0) * p1[j + 1]
                ) * np.float32(0.0625)
            # 3. test against the background and its noise level
            b = bg[i, j]
            d = x - b
            ad = abs(d)
            thr = max(floor, k_sigma * noise[i, j])
            fg = ad > thr
            du = np.float32(0.0)
            dv = np.float32(0.0)
            shadow = False
            if use_chroma:
                cj = min(wc - 1, int((j * f + 0.5 * f) * sx))
                cu = np.float32(chroma_u[ci, cj])
                cv = np.float32(chroma_v[ci, cj])
                du = cu - u_bg[i, j]
                dv = cv - v_bg[i, j]
                if abs(du) > cthr or abs(dv) > cthr:
                    fg = True
                # a shadow darkens and desaturates by the same ratio and keeps the hue
                if fg and d < 0 and b > np.float32(1.0):
                    ratio = x / b
                    if sh_lo > 0.0 and sh_lo <= ratio <= sh_hi:
                        su = (cu - np.float32(128.0)) - ratio * (u_bg[i, j] - np.float32(128.0))
                        sv = (cv - np.float32(128.0)) - ratio * (v_bg[i, j] - np.float32(128.0))
                        if abs(su) <= sh_c and abs(sv) <= sh_c:
                            shadow = True
            # 4. update: keep foreground out, absorb what stays still too long
            if fg and not relearn:
                c = fg_count[i, j]
                if c < 65535:
                    fg_count[i, j] = c + 1
                if c >= absorb_frames:
                    bg[i, j] = b + absorb_alpha * d
                    u_bg[i, j] += absorb_alpha * du
                    v_bg[i, j] += absorb_alpha * dv
                raw_mask[i, j] = 1 if shadow else 2
                n_fg += 1
                if d > 0:
                    n_bright += 1
                else:
                    n_dark += 1
            else:
                # leaky count: a ghost that the traffic sometimes matches is still absorbed
                c = fg_count[i, j]
                fg_count[i, j] = c - 1 if (c > 0 and not relearn) else 0
                bg[i, j] = b + alpha * d
                u_bg[i, j] += alpha * du
                v_bg[i, j] += alpha * dv
                noise[i, j] += nalpha * (min(ad, np.float32(4.0) * thr) - noise[i, j])
                raw_mask[i, j] = 1 if (ad > weak * thr and not relearn) else 0
                if not fg:
                    idle_sum += ad
                    idle_n += 1
    stats[S_FG] = n_fg
    stats[S_BRIGHTER] = n_bright
    stats[S_DARKER] = n_dark
    stats[S_IDLE_ABSDIFF] = idle_sum
    stats[S_IDLE_COUNT] = idle_n
    stats[S_CHANGED_BLOCKS] = changed


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def majority_filter(  # pragma: no cover
    mask: np.ndarray, radius: int, ignore: np.ndarray, out: np.ndarray, colsum: np.ndarray
) -> None:
    """Weighted majority over a (2r+1)^2 window, then the ignore mask.

    A pixel is set when twice the foreground count plus the shadow count in its window reaches
    twice the majority (pixels outside the frame count as background). Without shadow pixels this
    is the binary median; a cast shadow survives only within r pixels of its object.

    Args:
        mask: (h, w) uint8 input: 2 foreground, 1 shadow, 0 background.
        radius: window radius r >= 0.
        ignore: (h, w) uint8, 1 where motion is never reported (cleared after filtering).
        out: (h, w) uint8 0/1 output.
        colsum: (w,) int32 scratch.
    """
    h, w = mask.shape
    win = 2 * radius + 1
    need = 2 * ((win * win) // 2 + 1)
    colsum[:] = 0
    for i in range(min(radius, h)):
        for j in range(w):
            colsum[j] += mask[i, j]
    for i in range(h):
        add = i + radius
        if add < h:
            for j in range(w):
                colsum[j] += mask[add, j]
        sub = i - radius - 1
        if sub >= 0:
            for j in range(w):
                colsum[j] -= mask[sub, j]
        s = 0
        for j in range(min(radius, w)):
            s += colsum[j]
        for j in range(w):
            a = j + radius
            if a < w:
                s += colsum[a]
            r = j - radius - 1
            if r >= 0:
                s -= colsum[r]
            out[i, j] = 1 if (s >= need and ignore[i, j] == 0) else 0


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
    """8-connected components of a 0/1 mask, by runs and union-find.

    Args:
        mask: (h, w) uint8 0/1.
        runs: (h * (w // 2 + 1), 3) int32 scratch: row, start, end (exclusive) of each run.
        parent: (h * (w // 2 + 1),) int32 scratch.
        boxes: (n_max, BOX_FIELDS) int64 output; row k = x0, y0, x1, y1, area, sum_x, sum_y.

    Returns:
        The number of components found (may exceed n_max; only the first n_max are written,
        in raster order of their first run).
    """
    h, w = mask.shape
    n = 0
    prev_lo = 0
    prev_hi = 0
    for i in range(h):
        row = mask[i]
        cur_lo = n
        j = 0
        while j < w:
            if row[j] == 0:
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
            lc = abs(
                4.0 * cur[i, j]
                - np.float64(cur[i - 1, j])
                - cur[i + 1, j]
                - cur[i, j - 1]
                - cur[i, j + 1]
            )
            lr = abs(
                4.0 * ref[i, j]
                - np.float64(ref[i - 1, j])
                - ref[i + 1, j]
                - ref[i, j - 1]
                - ref[i, j + 1]
            )
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
