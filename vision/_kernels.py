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
    "BOX_FIELDS",
    "FASTMATH",
    "N_STATS",
    "N_TAMPER_STATS",
    "P_ABSORB_ALPHA",
    "P_ABSORB_FRAMES",
    "P_ALPHA",
    "P_BLUR",
    "P_CHROMA_THR",
    "P_FLOOR",
    "P_GLOBAL",
    "P_NOISE_ALPHA",
    "P_RADIUS",
    "P_RELEARN",
    "P_REPORT",
    "P_SHADOW_CHROMA",
    "P_SHADOW_HI",
    "P_SHADOW_LO",
    "P_THR_SIGMA",
    "P_WEAK",
    "S_BRIGHTER",
    "S_CHANGED_BLOCKS",
    "S_DARKER",
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
    "downscale_area",
    "label_components",
    "majority_filter",
    "motion_frame",
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
P_REPORT = 13  # motion_frame: 1.0 clean up and label the mask, 0.0 only learn (first/relearn)
P_GLOBAL = 14  # motion_frame: raw foreground fraction above which the frame is a global change
P_RADIUS = 15  # motion_frame: majority filter radius
N_PARAMS = 16

# motion_step statistics vector
S_FG = 0  # foreground pixels (raw)
S_BRIGHTER = 1  # foreground pixels brighter than background
S_DARKER = 2  # foreground pixels darker than background
S_IDLE_ABSDIFF = 3  # sum of |diff| over background pixels
S_IDLE_COUNT = 4  # number of background pixels
S_CHANGED_BLOCKS = 5  # analysis pixels whose block sum changed since the previous frame
S_MASK = 6  # pixels set in the cleaned mask (motion_frame only)
N_STATS = 7

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
def _downscale_row(luma: np.ndarray, f: int, i: int, acc: np.ndarray, out_row: np.ndarray) -> int:  # pragma: no cover
    """Analysis row ``i``: mean of f x f blocks into ``out_row``; returns how many values changed.

    ``acc`` is a uint16 scratch row of the full input width. Full-width loops are plain adds
    (vectorised); the per-block horizontal sums touch each input byte once more, from cache.
    """
    w = out_row.shape[0]
    changed = 0
    if f == 1:
        row = luma[i]
        for j in range(w):
            v = np.float32(row[j])
            changed += v != out_row[j]
            out_row[j] = v
        return changed
    width = w * f
    row = luma[i * f]
    for x in range(width):
        acc[x] = row[x]
    for r in range(i * f + 1, i * f + f):
        row = luma[r]
        for x in range(width):
            acc[x] += row[x]
    inv = np.float32(1.0 / (f * f))
    # constant strides for the usual factors let LLVM vectorise the interleaved loads
    if f == 2:
        for j in range(w):
            v = np.float32(np.uint32(acc[2 * j]) + acc[2 * j + 1]) * inv
            changed += v != out_row[j]
            out_row[j] = v
    elif f == 3:
        for j in range(w):
            v = np.float32(np.uint32(acc[3 * j]) + acc[3 * j + 1] + acc[3 * j + 2]) * inv
            changed += v != out_row[j]
            out_row[j] = v
    elif f == 4:
        for j in range(w):
            s4 = np.uint32(acc[4 * j]) + acc[4 * j + 1] + acc[4 * j + 2] + acc[4 * j + 3]
            v = np.float32(s4) * inv
            changed += v != out_row[j]
            out_row[j] = v
    elif f == 6:
        for j in range(w):
            s6 = (
                np.uint32(acc[6 * j])
                + acc[6 * j + 1]
                + acc[6 * j + 2]
                + acc[6 * j + 3]
                + acc[6 * j + 4]
                + acc[6 * j + 5]
            )
            v = np.float32(s6) * inv
            changed += v != out_row[j]
            out_row[j] = v
    else:
        for j in range(w):
            s = np.uint32(0)
            base = j * f
            for k in range(f):
                s += acc[base + k]
            v = np.float32(s) * inv
            changed += v != out_row[j]
            out_row[j] = v
    return changed


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def downscale_area(luma: np.ndarray, f: int, out: np.ndarray) -> int:  # pragma: no cover
    """Mean of each f x f block of ``luma`` (uint8) into ``out`` (float32, shape (H//f, W//f)).

    Returns the number of values of ``out`` that changed (0 means a bit-identical frame).
    """
    h, w = out.shape
    acc = np.empty(w * f, dtype=np.uint16)
    changed = 0
    for i in range(h):
        changed += _downscale_row(luma, f, i, acc, out[i])
    return changed


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def motion_step(  # pragma: no cover
    luma: np.ndarray,
    f: int,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    params: np.ndarray,
    cur: np.ndarray,
    bg: np.ndarray,
    noise: np.ndarray,
    bg_uv: np.ndarray,
    fg_count: np.ndarray,
    raw_mask: np.ndarray,
    stats: np.ndarray,
) -> None:
    """One frame of motion detection, fused: downscale, (blur), test, update.

    Args:
        luma: (H, W) uint8 luma plane of the decoded frame.
        f: integer area-downscale factor; the analysis frame is (H // f, W // f).
        chroma_u: (Hc, Wc) uint8 U plane (any subsampling), or a (1, 1) dummy when chroma is off.
        chroma_v: same shape as ``chroma_u``.
        params: float64 vector indexed by ``P_*``.
        cur: (h, w) float32; holds the previous analysis frame on entry (frozen-stream count)
            and this one on exit.
        bg: (h, w) float32 background luma.
        noise: (h, w) float32 per-pixel noise (running mean absolute deviation).
        bg_uv: (2, h, w) float32 background chroma.
        fg_count: (h, w) uint16 per-pixel foreground count: +1 on foreground, -1 on background.
        raw_mask: (h, w) uint8 output: 2 foreground, 1 shadow or weak difference, 0 background.
        stats: float64 vector indexed by ``S_*`` (overwritten).
    """
    h, w = bg.shape
    # 1. area downscale, one read of the input (row-sized scratch only)
    acc = np.empty(w * f, dtype=np.uint16)
    changed = 0
    for i in range(h):
        changed += _downscale_row(luma, f, i, acc, cur[i])

    k_sigma = np.float32(params[P_THR_SIGMA])
    floor = np.float32(params[P_FLOOR])
    cthr = np.float32(params[P_CHROMA_THR])
    alpha = np.float32(params[P_ALPHA])
    nalpha = np.float32(params[P_NOISE_ALPHA])
    absorb_frames = np.float32(min(params[P_ABSORB_FRAMES], 65000.0))
    absorb_alpha = np.float32(params[P_ABSORB_ALPHA])
    relearn = params[P_RELEARN] > 0.5
    sh_lo = np.float32(params[P_SHADOW_LO])
    sh_hi = np.float32(params[P_SHADOW_HI]) if sh_lo > 0.0 else np.float32(-1.0)
    if not cthr > 0.0:
        sh_hi = np.float32(-1.0)  # shadows are told apart by chroma only
    sh_c = np.float32(params[P_SHADOW_CHROMA])
    blur = params[P_BLUR] > 0.5
    weak = np.float32(params[P_WEAK])
    if relearn:
        k_sigma = np.float32(1e30)  # nothing is foreground; everything learns at alpha
        cthr_test = np.float32(1e30)
        weak = np.float32(1e30)
    else:
        cthr_test = cthr if cthr > 0.0 else np.float32(1e30)
    use_chroma = cthr > 0.0
    hc, wc = chroma_u.shape
    cidx = np.zeros(w, dtype=np.uint32)  # unsigned: no negative-index wraparound in the gather
    if use_chroma:
        for j in range(w):
            cidx[j] = min(wc - 1, int((j * f + 0.5 * f) * wc / (w * f)))
    half_res = f == 1 and 2 * wc == w  # 4:2:0 at native size: each chroma sample twice
    # the usual layouts sample chroma columns at a constant stride: c0 + stride * j
    c0 = int(cidx[0])
    stride = int(cidx[1]) - c0 if w > 1 else 1
    if stride < 1 or stride > 3:
        stride = 0
    for j in range(w):
        if int(cidx[j]) != c0 + stride * j:
            stride = 0
            break
    xrow = np.empty(w, dtype=np.float32)
    tmp = np.empty(w, dtype=np.float32)
    urow = np.full(w, np.float32(128.0))
    vrow = np.full(w, np.float32(128.0))
    n_fg = np.float32(0.0)
    n_bright = np.float32(0.0)
    idle_sum = np.float32(0.0)
    idle_n = np.float32(0.0)
    u_bg = bg_uv[0]
    v_bg = bg_uv[1]
    one = np.float32(1.0)
    zero = np.float32(0.0)
    c128 = np.float32(128.0)
    for i in range(h):
        # 2. optional light blur (3x3 binomial, edges replicated)
        if blur:
            a = cur[max(i - 1, 0)]
            b = cur[i]
            c = cur[min(i + 1, h - 1)]
            for j in range(w):
                tmp[j] = a[j] + np.float32(2.0) * b[j] + c[j]
            if w == 1:
                xrow[0] = tmp[0] * np.float32(0.25)
            else:
                xrow[0] = (np.float32(3.0) * tmp[0] + tmp[1]) * np.float32(0.0625)
                for j in range(1, w - 1):
                    xrow[j] = (tmp[j - 1] + np.float32(2.0) * tmp[j] + tmp[j + 1]) * np.float32(0.0625)
                xrow[w - 1] = (tmp[w - 2] + np.float32(3.0) * tmp[w - 1]) * np.float32(0.0625)
        xs = xrow if blur else cur[i]  # no copy when there is no blur
        if use_chroma:
            ci = min(hc - 1, int((i * f + 0.5 * f) * hc / (h * f)))
            cu_row = chroma_u[ci]
            cv_row = chroma_v[ci]
            if half_res:
                for k in range(w // 2):
                    a = np.float32(cu_row[k])
                    urow[2 * k] = a
                    urow[2 * k + 1] = a
                    c = np.float32(cv_row[k])
                    vrow[2 * k] = c
                    vrow[2 * k + 1] = c
            elif stride == 1:
                su_row = cu_row[c0 : c0 + w]
                sv_row = cv_row[c0 : c0 + w]
                for j in range(w):
                    urow[j] = su_row[j]
                    vrow[j] = sv_row[j]
            elif stride == 2:
                su_row = cu_row[c0:]
                sv_row = cv_row[c0:]
                for j in range(w):
                    urow[j] = su_row[2 * j]
                    vrow[j] = sv_row[2 * j]
            elif stride == 3:
                su_row = cu_row[c0:]
                sv_row = cv_row[c0:]
                for j in range(w):
                    urow[j] = su_row[3 * j]
                    vrow[j] = sv_row[3 * j]
            else:
                for j in range(w):
                    urow[j] = cu_row[cidx[j]]
                    vrow[j] = cv_row[cidx[j]]
        bgr = bg[i]
        nzr = noise[i]
        ubr = u_bg[i]
        vbr = v_bg[i]
        cnr = fg_count[i]
        rmr = raw_mask[i]
        # 3 + 4. test and update; arithmetic instead of branches so that the loop vectorises
        for j in range(w):
            x = xs[j]
            b = bgr[j]
            d = x - b
            ad = abs(d)
            thr = max(floor, k_sigma * nzr[j])
            du = urow[j] - ubr[j]
            dv = vrow[j] - vbr[j]
            fgf = np.float32((ad > thr) | (abs(du) > cthr_test) | (abs(dv) > cthr_test))
            # a shadow darkens and desaturates by one ratio x / b and keeps the hue
            # (tested multiplied through by b: no division)
            bb = max(b, one)
            su = (urow[j] - c128) * bb - x * (ubr[j] - c128)
            sv = (vrow[j] - c128) * bb - x * (vbr[j] - c128)
            lim = sh_c * bb
            shf = np.float32((d < zero) & (x >= sh_lo * bb) & (x <= sh_hi * bb) & (abs(su) <= lim) & (abs(sv) <= lim))
            cnt = np.float32(cnr[j])
            absorbed = np.float32(cnt >= absorb_frames)
            rate = fgf * absorbed * absorb_alpha + (one - fgf) * alpha
            bgr[j] = b + rate * d
            ubr[j] += rate * du
            vbr[j] += rate * dv
            nzr[j] += (one - fgf) * nalpha * (min(ad, np.float32(4.0) * thr) - nzr[j])
            cnr[j] = np.uint16(max(zero, min(cnt + fgf + fgf - one, np.float32(65535.0))))
            weakf = np.float32(ad > weak * thr)
            rmr[j] = np.uint8(fgf * (np.float32(2.0) - shf) + (one - fgf) * weakf)
            n_fg += fgf
            n_bright += fgf * np.float32(d > zero)
            idle_sum += (one - fgf) * ad
            idle_n += one - fgf
        if relearn:
            cnr[:] = 0
    n_dark = n_fg - n_bright
    stats[S_FG] = n_fg
    stats[S_BRIGHTER] = n_bright
    stats[S_DARKER] = n_dark
    stats[S_IDLE_ABSDIFF] = idle_sum
    stats[S_IDLE_COUNT] = idle_n
    stats[S_CHANGED_BLOCKS] = changed


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
        radius: window radius r >= 0.
        ignore: (h, w) uint8, 1 where motion is never reported (cleared after filtering).
        out: (h, w) uint8 0/1 output.
        colsum: (w + 2 * radius,) uint8 scratch.

    Returns:
        The number of pixels set in ``out``.
    """
    h, w = mask.shape
    win = 2 * radius + 1
    need = np.uint8(2 * ((win * win) // 2 + 1))
    # column sums over the window's rows, padded by r zeros on both sides; counts fit in uint8
    # (at most 2 * 9 * 9), so every loop below runs on 64 bytes per AVX-512 instruction
    colsum[:] = 0
    col = colsum[radius : radius + w]  # slices, not offset indices: no wraparound checks
    hs = np.empty(w, dtype=np.uint8)
    # rows with nothing set are skipped; a window of empty rows writes zeros (idle cameras: all)
    row_set = np.zeros(h, dtype=np.uint8)
    for i in range(h):
        row = mask[i]
        anyset = np.uint8(0)
        for j in range(w):
            anyset |= row[j]
        row_set[i] = anyset != 0
    in_window = 0  # rows with something set among rows i - r .. i + r
    total = 0
    for i in range(min(radius, h)):
        if row_set[i]:
            in_window += 1
            row = mask[i]
            for j in range(w):
                col[j] += row[j]
    for i in range(h):
        add = i + radius
        if add < h and row_set[add]:
            in_window += 1
            row = mask[add]
            for j in range(w):
                col[j] += row[j]
        sub = i - radius - 1
        if sub >= 0 and row_set[sub]:
            in_window -= 1
            row = mask[sub]
            for j in range(w):
                col[j] -= row[j]
        orow = out[i]
        if in_window == 0:
            orow[:] = 0
            continue
        hs[:] = 0
        for k in range(win):
            colk = colsum[k : k + w]
            for j in range(w):
                hs[j] += colk[j]
        irow = ignore[i]
        for j in range(w):
            o = np.uint8(hs[j] >= need) & (np.uint8(1) ^ irow[j])
            orow[j] = o
            total += o
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
        anyset = np.uint8(0)
        for j in range(w):
            anyset |= row[j]
        j = 0 if anyset else w
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
def motion_frame(  # pragma: no cover
    luma: np.ndarray,
    f: int,
    chroma_u: np.ndarray,
    chroma_v: np.ndarray,
    params: np.ndarray,
    state: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ignore: np.ndarray,
    mask: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray],
    boxes: np.ndarray,
    stats: np.ndarray,
) -> int:
    """The whole motion stage in one call: :func:`motion_step`, clean-up, labelling.

    ``state`` is ``(cur, bg, noise, bg_uv, fg_count, raw_mask)`` and ``scratch`` is
    ``(colsum, runs, parent)`` as for the kernels called. Returns the number of components, or
    -1 when the mask was not produced (``P_REPORT`` off, or a global change: more than
    ``P_GLOBAL`` of the frame in raw foreground); ``mask`` is then all zero.
    """
    cur, bg, noise, bg_uv, fg_count, raw = state
    colsum, runs, parent = scratch
    motion_step(luma, f, chroma_u, chroma_v, params, cur, bg, noise, bg_uv, fg_count, raw, stats)
    h, w = bg.shape
    stats[S_MASK] = 0
    if params[P_REPORT] < 0.5 or stats[S_FG] > params[P_GLOBAL] * h * w:
        mask[:] = 0
        return -1
    n_set = majority_filter(raw, int(params[P_RADIUS]), ignore, mask, colsum)
    stats[S_MASK] = n_set
    if n_set == 0:
        return 0
    return label_components(mask, runs, parent, boxes)
