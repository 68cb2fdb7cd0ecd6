"""Plain NumPy (and plain Python) references of every vision kernel, written for clarity.

Each function returns fresh arrays instead of updating preallocated ones; the tests compare them
with the numba kernels on random frames and edge cases.

Why this file is long: it mirrors vision/_kernels.py (one file, for numba's cache) reference by
reference, so that each kernel and its reference can be read side by side.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vision import _kernels as K

F32 = np.float32


def downscale_area(luma: np.ndarray, f: int) -> np.ndarray:
    """Mean of each f x f block; the remainder rows/columns are dropped."""
    h, w = luma.shape[0] // f, luma.shape[1] // f
    blocks = luma[: h * f, : w * f].astype(np.float64).reshape(h, f, w, f)
    out: np.ndarray = blocks.mean(axis=(1, 3)).astype(F32)
    return out


def _blur121(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="edge").astype(F32)
    v = p[:-2] + F32(2) * p[1:-1] + p[2:]
    out: np.ndarray = ((v[:, :-2] + F32(2) * v[:, 1:-1] + v[:, 2:]) * F32(0.0625)).astype(F32)
    return out


def _sample_chroma(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    """Chroma minus 128 at half the analysis resolution: pixel (i, j) takes the sample at the
    centre of its 2x2 pair block, ((2 (i // 2) + 1) / h, (2 (j // 2) + 1) / w) of the plane."""
    hc, wc = plane.shape
    rows = [min(hc - 1, (2 * (i // 2) + 1) * hc // h) for i in range(h)]
    cols = [min(wc - 1, (2 * (j // 2) + 1) * wc // w) for j in range(w)]
    return plane[np.ix_(rows, cols)].astype(F32) - F32(128)


def background_slope(bg: np.ndarray) -> np.ndarray:
    """Half the larger central difference across and down, one-sided (not halved) at the edges,
    rounded down to uint8."""
    h, w = bg.shape
    b = bg.astype(F32)

    def along(axis: int, n: int) -> np.ndarray:
        if n == 1:
            return np.zeros_like(b)
        grad: np.ndarray = np.abs(np.gradient(b, axis=axis))  # central halves, one-sided edges
        return grad

    out: np.ndarray = np.floor(np.maximum(along(1, w), along(0, h))).astype(np.uint8)
    return out


def motion_step(
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
    last: np.ndarray,
    raw: np.ndarray,
) -> dict[str, np.ndarray]:
    """Reference of :func:`vision._kernels.motion_step`; returns the new state and outputs.

    ``last`` and ``raw`` are the previous frame's rounded analysis frame and raw mask.
    """
    h, w = bg.shape
    x = downscale_area(luma, f)
    if params[K.P_BLUR] > 0.5:
        x = _blur121(x)
    cthr = F32(params[K.P_CHROMA_THR])
    use_chroma = cthr > 0
    relearn = params[K.P_RELEARN] > 0.5
    # relearning: a threshold nothing reaches, so every pixel learns at alpha
    floor = F32(1e30) if relearn else F32(params[K.P_FLOOR])
    k_sigma = F32(params[K.P_THR_SIGMA])
    cthr_test = F32(1e30) if (relearn or not use_chroma) else cthr
    weak = F32(1) if relearn else F32(params[K.P_WEAK])
    sh_lo = F32(params[K.P_SHADOW_LO])
    sh_hi = F32(params[K.P_SHADOW_HI]) if (sh_lo > 0 and use_chroma) else F32(-1)
    sh_c = F32(params[K.P_SHADOW_CHROMA])
    if use_chroma:
        u = _sample_chroma(chroma_u, h, w)
        v = _sample_chroma(chroma_v, h, w)
    else:
        u = np.zeros((h, w), F32)
        v = np.zeros((h, w), F32)
    b = bg.astype(F32)
    d = x - b
    ad = np.abs(d)
    thr = np.maximum(floor, k_sigma * noise)
    # shake tolerance: foreground needs the threshold plus P_EDGE times the background's slope
    thr_fg = thr + F32(params[K.P_EDGE]) * slope.astype(F32)
    du = u - bg_uv[0]
    dv = v - bg_uv[1]
    colour = (np.abs(du) > cthr_test) | (np.abs(dv) > cthr_test)
    own = (ad > thr_fg) | colour
    cnt = fg_count.astype(np.float64)
    # rows that learn this frame: all, or one in LEARN_EVERY at the rates of that many frames
    learn_rows = 0 if relearn else int(params[K.P_LEARN_ROWS])
    alpha, nalpha, absorb_alpha = (F32(params[k]) for k in (K.P_ALPHA, K.P_NOISE_ALPHA, K.P_ABSORB_ALPHA))
    absorb_frames = F32(min(params[K.P_ABSORB_FRAMES], 65000.0))
    if learn_rows > 0:
        n = K.LEARN_EVERY
        alpha, nalpha, absorb_alpha = (
            F32(1.0 - (1.0 - params[k]) ** n) for k in (K.P_ALPHA, K.P_NOISE_ALPHA, K.P_ABSORB_ALPHA)
        )
        absorb_frames = absorb_frames / F32(n)
    learns = ((np.arange(h) + learn_rows) % K.LEARN_EVERY == 0)[:, None] if learn_rows > 0 else np.ones((h, 1), bool)
    absorbed = cnt >= absorb_frames
    if params[K.P_NEIGHBOURS] > 0.5 and not relearn:
        # row by row, as the kernel: the row above as learned on this frame, this row and the
        # one below as before it; each row's own rate decides what it learns
        fg = np.zeros((h, w), bool)
        new_bg = b.copy()
        for i in range(h):
            # neighbours outside the frame are left out (NaN, ignored by fmin); the frame's first
            # and last rows see their own row in place of the missing one
            near = np.full(w, np.nan, F32)
            for k, r in enumerate((new_bg[max(i - 1, 0)], b[i], b[min(i + 1, h - 1)])):
                padded = np.pad(r, 1, constant_values=np.nan)
                for dx in (-1, 0, 1):
                    if k == 1 and dx == 0:
                        continue  # the pixel itself
                    near = np.fmin(near, np.abs(x[i] - padded[1 + dx : 1 + dx + w]))
            near = np.where(np.isnan(near), F32(1e30), near)  # a 1x1 frame has no neighbour
            fg[i] = own[i] & ((near > thr_fg[i]) | colour[i])
            rate_i = np.where(fg[i], np.where(absorbed[i], absorb_alpha, F32(0)), np.where(own[i], F32(0), alpha))
            if learns[i, 0]:
                new_bg[i] = (b[i] + rate_i.astype(F32) * d[i]).astype(F32)
    else:
        fg = own
    rate = np.where(fg, np.where(absorbed, absorb_alpha, F32(0)), np.where(own, F32(0), alpha))
    rate = np.where(learns, rate, F32(0)).astype(F32)
    new_bg = (b + rate * d).astype(F32)
    new_uv = np.stack([bg_uv[0] + rate * du, bg_uv[1] + rate * dv]).astype(F32)
    # the shadow test compares with the updated background (the same as the old one for
    # foreground that is not yet absorbed)
    ratio_ok_b = np.maximum(new_bg, F32(1))
    su = u * ratio_ok_b - x * new_uv[0]  # chroma is centred: U - 128, V - 128
    sv = v * ratio_ok_b - x * new_uv[1]
    lim = sh_c * ratio_ok_b
    xp = np.pad(x, ((0, 0), (1, 1)), mode="edge")
    bp = np.pad(new_bg, ((0, 0), (1, 1)), mode="edge")
    across = bp[:, 2:] - bp[:, :-2]  # the background's contrast across the pixel (one-sided at the edges)
    # only where a dark object would fail: colour or contrast on the background, or a gradual
    # arrival (within the threshold of the last frame, which was not foreground there)
    told = (
        (x * np.abs(across) > thr * ratio_ok_b) | (x * np.abs(new_uv[0]) > lim) | (x * np.abs(new_uv[1]) > lim)
        | ((raw != 2) & (np.abs(x - last.astype(F32)) <= thr))
    )  # fmt: skip
    shadow = (
        (x < new_bg) & (x >= sh_lo * ratio_ok_b) & (x <= sh_hi * ratio_ok_b)
        & (np.abs(su) <= lim) & (np.abs(sv) <= lim) & told
    )  # fmt: skip
    if params[K.P_SHADE] > 0.5 and sh_hi > 0:
        # lighter shade: same darkening and hue, and the contrast across the pixel scaled by
        # the same ratio to within its threshold
        contrast = (xp[:, 2:] - xp[:, :-2]) * ratio_ok_b - x * across
        light = (
            (x < new_bg) & (x > sh_hi * ratio_ok_b) & (np.abs(su) <= lim) & (np.abs(sv) <= lim)
            & (np.abs(contrast) <= thr * ratio_ok_b) & told
        )  # fmt: skip
        shadow |= light
    new_noise = np.where(own | ~learns, noise, noise + nalpha * (ad - noise)).astype(F32)
    new_cnt = np.where(learns, np.clip(cnt + np.where(fg, 1, -1), 0, 65535), cnt).astype(F32)
    if relearn:
        new_cnt[:] = 0
    new_raw = np.where(fg, np.where(shadow, 1, 2), np.where(ad > weak * thr, 1, 0)).astype(np.uint8)
    stats = np.zeros(K.N_STATS)
    stats[K.S_FG] = np.count_nonzero(fg)
    stats[K.S_IDLE_ABSDIFF] = float(ad[~fg].astype(np.float64).sum())
    stats[K.S_IDLE_COUNT] = np.count_nonzero(~fg)
    if use_chroma:  # every 8th analysis row
        stats[K.S_CHROMA] = float(np.mean(np.abs(u[::8]) + np.abs(v[::8]) > F32(K.COLOURED)))
    stats[K.S_CORR] = block_correlation(x, b)
    return {
        "bg": new_bg,
        "noise": new_noise,
        "bg_uv": new_uv,
        "fg_count": new_cnt,
        "raw": new_raw,
        "stats": stats,
        "last": np.floor(x + F32(0.5)).astype(np.uint8),
    }


def block_correlation(x: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the 4x4 block sums of ``x`` and ``b`` over whole blocks (1.0 when
    either is flat, its block means' variance below 1e-4, or there is no whole block)."""
    h, w = (n - n % 4 for n in x.shape)
    if h == 0 or w == 0:
        return 1.0
    xs, bs = (a[:h, :w].astype(np.float64).reshape(h // 4, 4, w // 4, 4).sum(axis=(1, 3)).ravel() for a in (x, b))
    if xs.var() <= 1e-4 * 16**2 or bs.var() <= 1e-4 * 16**2:
        return 1.0
    return float(np.corrcoef(xs, bs)[0, 1])


def frame_control(params: np.ndarray, ctl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference of :func:`vision._kernels.frame_control`: new (params, ctl), in plain Python."""
    p, c = params.copy(), ctl.copy()
    t = float(c[K.C_T])
    use_chroma = c[K.C_CHROMA] > 0.5
    frames = float(c[K.C_FRAMES])
    if frames > 0 and t > c[K.C_T_LAST]:
        c[K.C_DT] += 0.1 * (min(t - c[K.C_T_LAST], 5.0) - c[K.C_DT])
    c[K.C_T_LAST] = t
    first = frames == 0 or (use_chroma and not c[K.C_CHROMA_SEEN] > 0.5)
    relearning = t < c[K.C_RELEARN_UNTIL]
    p[K.P_FLOOR] = max(p[K.P_MIN_THRESHOLD], p[K.P_FLOOR_GAIN] * c[K.C_IDLE_LEVEL])
    p[K.P_CHROMA_THR] = p[K.P_CHROMA_SETTING] if use_chroma else 0.0
    p[K.P_ABSORB_FRAMES] = min(65000.0, p[K.P_ABSORB_S] / c[K.C_DT])
    if first:
        p[K.P_ALPHA], p[K.P_RELEARN] = 1.0, 1.0
    elif relearning:
        # 5% of the old view left after P_RELEARN_S at this frame rate (0.25 a frame at least)
        per_frame = 1.0 - 0.05 ** (c[K.C_DT] / max(p[K.P_RELEARN_S], 1e-3))
        p[K.P_ALPHA], p[K.P_RELEARN] = max(p[K.P_BG_ALPHA], 0.25, per_frame), 1.0
    else:
        p[K.P_ALPHA], p[K.P_RELEARN] = max(p[K.P_BG_ALPHA], 1.0 / (frames + 1)), 0.0
    p[K.P_REPORT] = 0.0 if (first or relearning) else 1.0
    # one row in LEARN_EVERY learns, in turn, once the rate is at most 0.1 (not while relearning)
    alternate = not (first or relearning) and p[K.P_ALPHA] <= 0.1
    p[K.P_LEARN_ROWS] = 1.0 + frames % K.LEARN_EVERY if alternate else 0.0
    p[K.P_CHROMA_REF] = c[K.C_CHROMA_LEVEL]
    c[K.C_FIRST] = float(first)
    c[K.C_RELEARNING] = float(relearning)
    return p, c


def frame_feedback(
    params: np.ndarray, ctl: np.ndarray, stats: np.ndarray, fg_count: np.ndarray, n_boxes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reference of :func:`vision._kernels.frame_feedback`: new (ctl, fg_count)."""
    c, cnt = ctl.copy(), fg_count.copy()
    relearning = c[K.C_RELEARNING] > 0.5
    c[K.C_FRAMES] += 1
    if c[K.C_CHROMA] > 0.5:
        c[K.C_CHROMA_SEEN] = 1.0
    idle_n = stats[K.S_IDLE_COUNT]
    if idle_n > 0 and stats[K.S_FG] / cnt.size < params[K.P_IDLE_FRACTION] and not relearning:
        c[K.C_IDLE_LEVEL] += params[K.P_IDLE_ALPHA] * (stats[K.S_IDLE_ABSDIFF] / idle_n - c[K.C_IDLE_LEVEL])
    fresh_or_relearning = c[K.C_FIRST] > 0.5 or relearning
    # frames with more than P_GLOBAL raw foreground for GLOBAL_HOLD_S without a break: a new view
    changed = stats[K.S_FG] / cnt.size > params[K.P_GLOBAL] and not fresh_or_relearning
    c[K.C_CHANGED_FOR] = c[K.C_CHANGED_FOR] + c[K.C_DT] if changed else 0.0
    global_change = (n_boxes < 0 or c[K.C_CHANGED_FOR] >= K.GLOBAL_HOLD_S) and not fresh_or_relearning
    c[K.C_GLOBAL] = float(global_change)
    if global_change:
        c[K.C_CHANGED_FOR] = 0.0
        c[K.C_RELEARN_UNTIL] = c[K.C_T] + params[K.P_RELEARN_S]
        cnt[:] = 0
    if c[K.C_CHROMA] > 0.5:
        level = c[K.C_CHROMA_LEVEL]
        fresh = level < 0 or c[K.C_FIRST] > 0.5 or relearning or global_change
        c[K.C_CHROMA_LEVEL] = stats[K.S_CHROMA] if fresh else level + 0.1 * (stats[K.S_CHROMA] - level)
    return c, cnt


def colour_jump(params: np.ndarray, stats: np.ndarray) -> bool:
    """Reference of the colour-switch test that makes a frame a global change."""
    ref, spread = params[K.P_CHROMA_REF], stats[K.S_CHROMA]
    if params[K.P_CHROMA_THR] <= 0 or ref < 0 or stats[K.S_CORR] ** 2 <= K.GLOBAL_EXPLAINED:
        return False
    lost = ref >= K.COLOUR_WIDE and spread < K.COLOUR_NARROW
    return bool(lost or (ref < K.COLOUR_NARROW and spread >= K.COLOUR_WIDE))


def majority_filter(mask: np.ndarray, radius: int, ignore: np.ndarray) -> np.ndarray:
    """Weighted (2r+1)^2 majority with zero padding, then the ignore mask."""
    win = 2 * radius + 1
    need = 2 * ((win * win) // 2 + 1)
    padded = np.pad(mask.astype(np.int64), radius)
    sums = np.lib.stride_tricks.sliding_window_view(padded, (win, win)).sum(axis=(2, 3))
    out: np.ndarray = ((sums >= need) & (ignore == 0)).astype(np.uint8)
    return out


def component_labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components by breadth-first flood fill: an int64 label image (0 outside the
    mask, 1..n in raster order of each component's first pixel) and n."""
    h, w = mask.shape
    labels = np.zeros((h, w), dtype=np.int64)
    n = 0
    for y in range(h):
        for x in range(w):
            if mask[y, x] == 0 or labels[y, x]:
                continue
            n += 1
            queue = deque([(y, x)])
            labels[y, x] = n
            while queue:
                cy, cx = queue.popleft()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = cy + dy, cx + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = n
                            queue.append((ny, nx))
    return labels, n


def label_components(mask: np.ndarray) -> np.ndarray:
    """8-connected components in raster order of first pixel.

    Returns an (n, 7) int64 array: x0, y0, x1, y1 (exclusive), area, sum_x, sum_y.
    """
    labels, n = component_labels(mask)
    rows: list[list[int]] = []
    for c in range(1, n + 1):
        ys, xs = np.nonzero(labels == c)
        rows.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, xs.size, xs.sum(), ys.sum()])
    return np.array(rows, dtype=np.int64).reshape(-1, K.BOX_FIELDS)


def select_boxes(boxes: np.ndarray, min_area: int, keep: int) -> np.ndarray:
    """Rows with area >= min_area, largest first (a stable sort), at most ``keep``."""
    rows = sorted((r for r in boxes.tolist() if r[4] >= min_area), key=lambda r: -r[4])[:keep]
    return np.array(rows, dtype=np.int64).reshape(-1, K.BOX_FIELDS)


def zone_counts(mask: np.ndarray, zone_bits: np.ndarray, n_zones: int) -> np.ndarray:
    """Set pixels per zone bit."""
    return np.array(
        [np.count_nonzero((mask != 0) & (((zone_bits >> z) & 1) != 0)) for z in range(n_zones)],
        dtype=np.int64,
    )


def tamper_stats(cur: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Mean, std, edge and detail energy of both frames, and their edge-map correlation."""
    c = cur.astype(np.float64)
    r = ref.astype(np.float64)
    out = np.zeros(K.N_TAMPER_STATS)
    out[K.T_MEAN] = c.mean()
    out[K.T_STD] = c.std()
    h, w = c.shape
    if h < 3 or w < 3:
        return out

    def grad(a: np.ndarray) -> np.ndarray:
        g: np.ndarray = np.abs(a[1:-1, 2:] - a[1:-1, 1:-1]) + np.abs(a[2:, 1:-1] - a[1:-1, 1:-1])
        return g

    def lap(a: np.ndarray) -> np.ndarray:
        lp: np.ndarray = np.abs(4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])
        return lp

    gc, gr = grad(c), grad(r)
    out[K.T_EDGE] = gc.mean()
    out[K.T_DETAIL] = lap(c).mean()
    out[K.T_REF_EDGE] = gr.mean()
    out[K.T_REF_DETAIL] = lap(r).mean()
    if gc.var() <= 1e-9 or gr.var() <= 1e-9:
        out[K.T_CORR] = 0.0
    else:
        out[K.T_CORR] = float(np.corrcoef(gc.ravel(), gr.ravel())[0, 1])
    return out


def plane_spread(plane: np.ndarray, step: int) -> float:
    """Standard deviation of every ``step``-th row and column."""
    sample = plane[::step, ::step].astype(np.float64)
    return float(sample.std()) if sample.size else 0.0


def _weights(sx: float, sy: float) -> tuple[int, int, float, float, float, float]:
    ix, iy = int(np.floor(sx)), int(np.floor(sy))
    fx, fy = sx - ix, sy - iy
    return ix, iy, (1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy


def shift_sample(src: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """``src`` read at (i + sy, j + sx), bilinear with clamped coordinates, rounded to uint8."""
    h, w = src.shape
    ix, iy, w00, w01, w10, w11 = _weights(sx, sy)
    a = src.astype(np.float64)
    r0 = np.clip(np.arange(h) + iy, 0, h - 1)
    r1 = np.clip(np.arange(h) + iy + 1, 0, h - 1)
    c0 = np.clip(np.arange(w) + ix, 0, w - 1)
    c1 = np.clip(np.arange(w) + ix + 1, 0, w - 1)
    v = w00 * a[np.ix_(r0, c0)] + w01 * a[np.ix_(r0, c1)] + w10 * a[np.ix_(r1, c0)] + w11 * a[np.ix_(r1, c1)]
    return np.clip(np.floor(v + 0.5), 0, 255).astype(np.uint8)


def lk_step(cur: np.ndarray, bg: np.ndarray, sx: float, sy: float, max_diff: float) -> np.ndarray:
    """The nine Lucas-Kanade sums over pixels two or more from the border whose sample lies inside."""
    h, w = bg.shape
    ix, iy, w00, w01, w10, w11 = _weights(sx, sy)
    c, b = cur.astype(np.float64), bg.astype(np.float64)
    sums = np.zeros(9)
    for i in range(max(2, -iy), min(h - 2, h - 1 - iy)):
        for j in range(max(2, -ix), min(w - 2, w - 1 - ix)):
            y, x = i + iy, j + ix
            d = w00 * c[y, x] + w01 * c[y, x + 1] + w10 * c[y + 1, x] + w11 * c[y + 1, x + 1] - b[i, j]
            if abs(d) >= max_diff:
                continue
            gx, gy = 0.5 * (b[i, j + 1] - b[i, j - 1]), 0.5 * (b[i + 1, j] - b[i - 1, j])
            sums += (gx * gx, gx * gy, gy * gy, gx * d, gy * d, gx, gy, d, 1.0)
    return sums


def follow_map(inv: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """Reference of :func:`vision._kernels.follow_map`: (source map, pixels brought into view)."""
    h, w = shape
    ii, jj = np.mgrid[0:h, 0:w]
    x = np.floor(inv[0, 0] * jj + inv[0, 1] * ii + inv[0, 2] + 0.5).astype(np.int64)
    y = np.floor(inv[1, 0] * jj + inv[1, 1] * ii + inv[1, 2] + 0.5).astype(np.int64)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    return np.where(inside, y * w + x, -1).astype(np.int32), int(np.count_nonzero(~inside))


def gather_pixels(a: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Reference of :func:`vision._kernels.gather_pixels` on (h * w,) ``a`` and flat ``src``."""
    out = a.copy()
    kept = src >= 0
    out[kept] = a[src[kept]]
    return out


def renew_pixels(
    frame: np.ndarray, chroma: tuple[np.ndarray, np.ndarray] | None, src: np.ndarray, noise_init: float, rng: int,
    state: tuple[np.ndarray, ...],
) -> tuple[int, tuple[np.ndarray, ...]]:  # fmt: skip
    """Reference of :func:`vision._kernels.renew_pixels`, the random draws in the same order
    (pixel by pixel in raster order, a pixel's samples in turn); ``chroma`` None: neutral.

    Returns (random state, the state arrays renewed)."""
    bg, noise, bg_uv, fg_count, slope, raw, last, prev, samples, texture = (a.copy() for a in state)
    h, w = frame.shape
    rng = rng or K.RNG_SEED
    desc = lbsp(frame)
    uv = (_sample_chroma(chroma[0], h, w), _sample_chroma(chroma[1], h, w)) if chroma is not None else None
    for i, j in zip(*np.nonzero(src < 0), strict=True):
        bg[i, j] = frame[i, j]
        noise[i, j] = noise_init
        bg_uv[:, i, j] = (uv[0][i, j], uv[1][i, j]) if uv is not None else (0.0, 0.0)
        fg_count[i, j] = 0.0
        raw[i, j] = 0
        last[i, j] = prev[i, j] = frame[i, j]
        for k in range(samples.shape[2]):
            rng = xorshift(rng)
            ii = min(h - 1, max(0, i + int(K._SPREAD[rng & 63])))
            jj = min(w - 1, max(0, j + int(K._SPREAD[(rng >> 6) & 63])))
            samples[i, j, k] = frame[ii, jj]
            texture[i, j, k] = desc[ii, jj]
    return rng, (bg, noise, bg_uv, fg_count, slope, raw, last, prev, samples, texture)


def blurred_edge_correlation(cur: np.ndarray, ref: np.ndarray, radius: int) -> float:
    """Reference of :func:`vision._kernels.blurred_edge_correlation`."""
    c = cur.astype(np.float64)
    r = ref.astype(np.float64)
    h, w = c.shape
    k = 2 * radius + 1
    if h - 2 - 2 * radius < 1 or w - 2 - 2 * radius < 1:
        return 0.0

    def blurred_edges(a: np.ndarray) -> np.ndarray:
        g = np.abs(a[1:-1, 2:] - a[1:-1, 1:-1]) + np.abs(a[2:, 1:-1] - a[1:-1, 1:-1])
        sums: np.ndarray = np.lib.stride_tricks.sliding_window_view(g, (k, k)).sum(axis=(-2, -1))
        return sums

    gc, gr = blurred_edges(c), blurred_edges(r)
    if gc.var() <= 1e-9 * max(1.0, gc.mean() ** 2) or gr.var() <= 1e-9 * max(1.0, gr.mean() ** 2):
        return 0.0
    return float(np.corrcoef(gc.ravel(), gr.ravel())[0, 1])


def xorshift(state: int) -> int:
    """The next state of the 32-bit xorshift generator of sample_veto."""
    m = 0xFFFFFFFF
    state ^= (state << 13) & m
    state ^= state >> 17
    state ^= (state << 5) & m
    return state


def lbsp(frame: np.ndarray) -> np.ndarray:
    """Every pixel's 16-bit texture descriptor: bit k set where ring pixel k (the 5x5 border, in
    the kernel's order) differs from the pixel by more than its relative threshold; the frame's
    edge repeats outside it."""
    h, w = frame.shape
    c = frame.astype(F32)
    pad = np.pad(c, 2, mode="edge")
    t = c * F32(K._LBSP_REL) + F32(K._LBSP_ABS)
    out = np.zeros((h, w), np.uint16)
    for k, (dy, dx) in enumerate(zip(K._RING_DY, K._RING_DX, strict=True)):
        ring = pad[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]
        out |= np.where(np.abs(ring - c) > t, np.uint16(1 << k), np.uint16(0))
    return out


def sample_veto(
    params: np.ndarray,
    new_view: bool,
    rng: int,
    frame: np.ndarray,
    chroma: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    noise: np.ndarray,
    raw: np.ndarray,
    samples: np.ndarray,
    texture: np.ndarray,
    frames: int,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, int]:
    """Reference of :func:`vision._kernels.sample_veto`, the random draws in the same order;
    ``chroma`` is (U plane, V plane, background chroma), or None without chroma; ``frames`` is
    ``C_FRAMES``, the frames analysed before this one (a young model updates its samples faster).

    Returns (random state, raw, samples, texture, pixels demoted)."""
    raw, samples, texture = raw.copy(), samples.copy(), texture.copy()
    rng = rng or K.RNG_SEED
    h, w, n = samples.shape
    desc = lbsp(frame)
    if params[K.P_RELEARN] > 0.5 and new_view:  # the first frame, or the first after a global change
        for k in range(n):
            for i in range(h):
                for j in range(w):
                    rng = xorshift(rng)
                    ii = min(h - 1, max(0, i + int(K._SPREAD[rng & 63])))
                    jj = min(w - 1, max(0, j + int(K._SPREAD[(rng >> 6) & 63])))
                    samples[i, j, k] = frame[ii, jj]
                    texture[i, j, k] = desc[ii, jj]
        return rng, raw, samples, texture, 0
    demoted = 0
    if params[K.P_SAMPLES] > 0.5:
        thr = np.maximum(F32(params[K.P_FLOOR]), F32(params[K.P_THR_SIGMA]) * noise)
        reach = F32(K._SAMPLE_REACH) * thr
        near = np.abs(frame.astype(F32)[:, :, None] - samples.astype(F32)) <= reach[:, :, None]
        diff = desc[:, :, None] ^ texture
        bits = np.array([[[bin(int(v)).count("1") for v in px] for px in row] for row in diff]).reshape(h, w, n)
        matches = np.count_nonzero(near & (bits <= K._SAMPLE_BITS), axis=2)
        # weak pixels are tested within each row's span from its first foreground pixel to its last
        cols = np.arange(w)[None, :]
        fg = raw == 2
        first = np.where(fg.any(axis=1), fg.argmax(axis=1), w)[:, None]
        last = np.where(fg.any(axis=1), w - 1 - fg[:, ::-1].argmax(axis=1), -1)[:, None]
        tested = fg | ((raw == 1) & (cols >= first) & (cols <= last))
        demote = tested & (matches >= K._SAMPLE_MATCHES)
        cthr = F32(K._SAMPLE_REACH) * F32(params[K.P_CHROMA_THR])
        if chroma is not None and cthr > 0:  # foreground by colour (as far off as the reach) stays
            u, v, bg_uv = chroma
            du = _sample_chroma(u, h, w) - bg_uv[0]
            dv = _sample_chroma(v, h, w) - bg_uv[1]
            demote &= (np.abs(du) <= cthr) & (np.abs(dv) <= cthr)
        # where the samples spread by more than _SAMPLE_MOVING thresholds the background moves: a
        # match is background there, foreground or weak (n^2 times the variance, exact in float32)
        s1 = samples.astype(F32).sum(axis=2)
        s2 = (samples.astype(F32) ** 2).sum(axis=2)
        moving = F32(n) * s2 - s1 * s1 > (F32(n * K._SAMPLE_MOVING) * thr) ** 2
        demoted = int(np.count_nonzero(demote & fg))
        raw[demote] = np.where(moving[demote], 0, 1)
    every = min(K._SAMPLE_EVERY, max(K._SAMPLE_EVERY_YOUNG, (frames + 1) // 2))
    for i in range(h):
        rng = xorshift(rng)
        j = rng % every
        while j < w:
            if raw[i, j] == 0:
                rng = xorshift(rng)
                samples[i, j, rng % n] = frame[i, j]
                texture[i, j, rng % n] = desc[i, j]
                k, q = (rng >> 8) % n, (rng >> 16) & 7
                ii = min(h - 1, max(0, i + int(K._NB_DY[q])))
                jj = min(w - 1, max(0, j + int(K._NB_DX[q])))
                samples[ii, jj, k] = frame[i, j]
                texture[ii, jj, k] = desc[i, j]
            rng = xorshift(rng)
            j += 1 + rng % (2 * every - 1)
    return rng, raw, samples, texture, demoted


def veil_test(
    params: np.ndarray, frame: np.ndarray, bg: np.ndarray, noise: np.ndarray, raw: np.ndarray
) -> tuple[np.ndarray, int]:
    """Reference of :func:`vision._kernels.veil_test`: (the raw mask, a changed copy; pixels
    demoted). The veil-like pixels' regions are labelled whatever their number (the kernel looks
    only when enough pixels are foreground, which changes nothing: a smaller count makes no
    region large enough)."""
    raw = raw.copy()
    if params[K.P_VEIL] < 0.5 or params[K.P_REPORT] < 0.5:
        return raw, 0
    h, w = raw.shape
    x = frame.astype(F32)
    thr = np.maximum(F32(params[K.P_FLOOR]), F32(params[K.P_THR_SIGMA]) * noise)
    pad = np.pad(x, 2, mode="edge")
    flat = np.ones((h, w), bool)
    for dy, dx in zip(K._RING_DY, K._RING_DX, strict=True):
        flat &= np.abs(pad[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] - x) <= thr
    labels, n = component_labels(((raw == 2) & (x > bg) & flat).astype(np.uint8))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    veil = (labels > 0) & (areas[labels] >= K._VEIL_AREA * h * w)
    raw[veil] = 1
    return raw, int(veil.sum())


def ghost_reset(
    params: np.ndarray,
    dt: float,
    frame: np.ndarray,
    prev: np.ndarray,
    chroma: tuple[np.ndarray, np.ndarray] | None,
    state: dict[str, np.ndarray],
    mask: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Reference of :func:`vision._kernels.ghost_reset` on a labelled mask. ``chroma`` is the
    (U, V) planes, or None without chroma; ``state`` holds bg, bg_uv, noise, fg_count, samples and
    texture. Returns (the state, changed copies; the mask; pixels cleared)."""
    st = {k: a.copy() for k, a in state.items()}
    mask = mask.copy()
    if params[K.P_GHOSTS] < 0.5:
        return st, mask, 0
    h, w = mask.shape
    labels, n = component_labels(mask)
    thr = np.maximum(F32(params[K.P_FLOOR]), F32(params[K.P_THR_SIGMA]) * st["noise"])
    moved = np.abs(frame.astype(F32) - prev.astype(F32)) > thr
    s = K._GHOST_SPAN

    def gradient(img: np.ndarray) -> np.ndarray:
        pad = np.pad(img.astype(np.float64), s, mode="edge")
        gx = np.abs(pad[s : s + h, 2 * s : 2 * s + w] - pad[s : s + h, :w])
        gy = np.abs(pad[2 * s : 2 * s + h, s : s + w] - pad[:h, s : s + w])
        return gx + gy

    def outline_of(comp: np.ndarray) -> np.ndarray:
        # the pixels outside the component joined to the frame's edge through them (not its
        # holes), then the component's pixels next to one; the frame's edge is no outline
        free = ~comp
        outer = np.zeros((h, w), bool)
        outer[0], outer[-1], outer[:, 0], outer[:, -1] = free[0], free[-1], free[:, 0], free[:, -1]
        while True:
            pad = np.pad(outer, 1)
            grown = (outer | pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]) & free
            if (grown == outer).all():
                break
            outer = grown
        pad = np.pad(outer, 1)
        out: np.ndarray = comp & (pad[:-2, 1:-1] | pad[2:, 1:-1] | pad[1:-1, :-2] | pad[1:-1, 2:]) & ~band
        return out

    band = np.zeros((h, w), bool)  # gradients that reach the frame's outer rows and columns
    band[: s + 1], band[h - 1 - s :], band[:, : s + 1], band[:, w - 1 - s :] = True, True, True, True
    g_frame, g_bg = gradient(frame), gradient(st["bg"])
    need = K._GHOST_AFTER_S / (max(dt, 1e-3) * K.LEARN_EVERY)
    ghost = np.zeros((h, w), bool)
    for c in range(1, n + 1):
        comp = labels == c
        area = comp.sum()
        old = st["fg_count"][comp].astype(np.float64).sum() >= need * area
        still = moved[comp].sum() * K._GHOST_STILL <= area
        if not (old and still):
            continue
        outline = outline_of(comp)
        if g_bg[outline].sum() > K._GHOST_EDGES * g_frame[outline].sum():
            ghost |= comp
    st["bg"][ghost] = frame[ghost]
    if chroma is not None and params[K.P_CHROMA_THR] > 0:
        for plane, k in zip(chroma, (0, 1), strict=True):
            st["bg_uv"][k][ghost] = _sample_chroma(plane, h, w)[ghost]
    st["fg_count"][ghost] = 0
    st["samples"][ghost] = frame[ghost][:, None]
    st["texture"][ghost] = lbsp(frame)[ghost][:, None]
    mask[ghost] = 0
    return st, mask, int(ghost.sum())
