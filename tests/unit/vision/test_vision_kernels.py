"""Every vision kernel against its plain NumPy reference in naive.py.

Why this file is long: the kernels live in one file (numba's cache is keyed on it), and
their reference tests follow them one to one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.testing as npt
import pytest
from numba import njit

from tests.unit.vision import naive
from vision import _kernels as K

RNG_SEEDS = (0, 1, 2)
# (height, width) of analysis frames: tiny, odd, ordinary
SHAPES = ((1, 1), (2, 3), (7, 5), (17, 31), (48, 64))


def _frame(kind: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == "constant":
        return np.full(shape, 77, dtype=np.uint8)
    if kind == "saturated":
        return np.where(rng.random(shape) < 0.5, 0, 255).astype(np.uint8)
    raise AssertionError(kind)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("f", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("kind", ["random", "constant", "saturated"])
def test_downscale_area_matches_reference(shape: tuple[int, int], f: int, kind: str) -> None:
    # odd leftovers: the input is a little larger than f * shape
    luma = _frame(kind, (shape[0] * f + f // 2, shape[1] * f + (f - 1)), 3)
    out = np.full(shape, -1.0, dtype=np.float32)
    K.downscale_area(luma, f, out)
    npt.assert_allclose(out, naive.downscale_area(luma, f), rtol=0, atol=1e-4)


@pytest.mark.parametrize("offset", [0, 1])
def test_downscale_area_reads_2x2_blocks_at_any_address(offset: int) -> None:
    # f = 2 reads rows as uint16 pairs when they start at even addresses, bytes otherwise
    buf = _frame("random", (1, 20 * 34 + 1), 8).ravel()
    luma = buf[offset : offset + 20 * 34].reshape(20, 34)
    assert luma.ctypes.data % 2 == (buf.ctypes.data + offset) % 2
    out = np.zeros((10, 17), np.float32)
    K.downscale_area(luma, 2, out)
    npt.assert_allclose(out, naive.downscale_area(luma, 2), rtol=0, atol=1e-4)


def _params(**over: float) -> np.ndarray:
    p = np.zeros(K.N_PARAMS)
    p[K.P_THR_SIGMA] = 3.5
    p[K.P_FLOOR] = 14.0
    p[K.P_CHROMA_THR] = 7.0
    p[K.P_ALPHA] = 0.04
    p[K.P_NOISE_ALPHA] = 0.01
    p[K.P_ABSORB_FRAMES] = 2
    p[K.P_ABSORB_ALPHA] = 0.05
    p[K.P_NEIGHBOURS] = 1.0
    p[K.P_SHADOW_LO] = 0.12
    p[K.P_SHADOW_HI] = 0.35
    p[K.P_SHADOW_CHROMA] = 3.0
    p[K.P_SHADE] = 1.0
    p[K.P_WEAK] = 0.6
    p[K.P_BLUR] = 0.0
    p[K.P_REPORT] = 1.0
    p[K.P_GLOBAL] = 1.0
    p[K.P_RADIUS] = 1
    p[K.P_EDGE] = 0.5
    p[K.P_SAMPLES] = 1.0
    p[K.P_GHOSTS] = 1.0
    p[K.P_VEIL] = 1.0
    for name, value in over.items():
        p[getattr(K, name)] = value
    return p


def _state(h: int, w: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    return {
        "bg": (rng.random((h, w)) * 255).astype(np.float32),
        "noise": (rng.random((h, w)) * 6).astype(np.float32),
        "bg_uv": (rng.random((2, h, w)) * 255 - 128).astype(np.float32),
        "fg_count": rng.integers(0, 4, (h, w)).astype(np.float32),
        "slope": rng.integers(0, 40, (h, w), dtype=np.uint8),
        "last": rng.integers(0, 256, (h, w), dtype=np.uint8),
    }


def _run_step(
    luma: np.ndarray, f: int, u: np.ndarray, v: np.ndarray, params: np.ndarray, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    h, w = luma.shape[0] // f, luma.shape[1] // f
    st = _state(h, w, seed)
    # the previous raw mask: some foreground, so that the shadow test's gradual arrival is
    # checked both ways
    raw = np.random.default_rng(seed + 200).integers(0, 3, (h, w), dtype=np.uint8)
    ref = naive.motion_step(luma, f, u, v, params, raw=raw.copy(), **{k: a.copy() for k, a in st.items()})
    stats = np.zeros(K.N_STATS)
    K.motion_step(luma, f, u, v, params, *_step_state(st), raw, st["last"], stats)
    got = dict(st, raw=raw, stats=stats)
    return got, ref


def _samples(h: int, w: int, seed: int, spread: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Random sample sets and textures of K.SAMPLES a pixel, values within 0..spread - 1."""
    rng = np.random.default_rng(seed + 300)
    values = rng.integers(0, spread, (h, w, K.SAMPLES), dtype=np.uint8)
    return values, rng.integers(0, 1 << 16, (h, w, K.SAMPLES), dtype=np.uint16)


def _step_state(st: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """motion_step's state arguments before the raw mask, from a state dict."""
    return st["bg"], st["noise"], st["bg_uv"], st["fg_count"], st["slope"]


def _assert_step_equal(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    npt.assert_allclose(got["bg"], ref["bg"], rtol=1e-5, atol=1e-3)
    npt.assert_allclose(got["noise"], ref["noise"], rtol=1e-5, atol=1e-3)
    npt.assert_allclose(got["bg_uv"], ref["bg_uv"], rtol=1e-5, atol=1e-3)
    npt.assert_allclose(got["fg_count"], ref["fg_count"], atol=0)
    npt.assert_allclose(got["raw"], ref["raw"], atol=0)
    npt.assert_array_equal(got["last"], ref["last"])
    npt.assert_allclose(got["stats"], ref["stats"], rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("f", [1, 2, 3, 4, 6])  # chroma column strides 1/2, 1, 1.5, 2, 3
@pytest.mark.parametrize("chroma", [True, False])
@pytest.mark.parametrize("neighbours", [1.0, 0.0])
def test_motion_step_matches_reference_on_random_frames(
    seed: int, shape: tuple[int, int], f: int, chroma: bool, neighbours: float
) -> None:
    rng = np.random.default_rng(seed)
    luma = rng.integers(0, 256, (shape[0] * f, shape[1] * f), dtype=np.uint8)
    hc, wc = max(1, shape[0] * f // 2), max(1, shape[1] * f // 2)
    u = rng.integers(0, 256, (hc, wc), dtype=np.uint8)
    v = rng.integers(0, 256, (hc, wc), dtype=np.uint8)
    params = _params(P_CHROMA_THR=7.0 if chroma else 0.0, P_NEIGHBOURS=neighbours)
    got, ref = _run_step(luma, f, u, v, params, seed)
    _assert_step_equal(got, ref)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("learn_rows", range(1, K.LEARN_EVERY + 1))
@pytest.mark.parametrize("f", [1, 2])
def test_motion_step_alternate_rows_match_reference(seed: int, learn_rows: int, f: int) -> None:
    """One row in LEARN_EVERY learns (P_LEARN_ROWS): a frame near the background, with objects,
    some of their pixels absorbed; the rows that do not learn keep their state exactly."""
    rng = np.random.default_rng(seed)
    h, w = 12, 17
    st = _state(h, w, seed)
    luma_small = np.clip(st["bg"] + rng.normal(0, 2, (h, w)), 0, 255)
    luma_small[rng.random((h, w)) < 0.2] = rng.integers(0, 256)  # objects
    luma = np.repeat(np.repeat(luma_small.astype(np.uint8), f, axis=0), f, axis=1)
    u = v = np.full((h * f // 2, w * f // 2), 128, np.uint8)
    # chroma off: the random chroma background would make every pixel foreground
    params = _params(P_LEARN_ROWS=learn_rows, P_ABSORB_FRAMES=4, P_CHROMA_THR=0.0)  # some absorbed
    got, ref = _run_step(luma, f, u, v, params, seed)
    _assert_step_equal(got, ref)
    idle = (np.arange(h) + learn_rows) % K.LEARN_EVERY != 0
    before = _state(h, w, seed)
    for name in ("bg", "noise", "fg_count"):
        npt.assert_array_equal(got[name][idle], before[name][idle])
        assert not np.array_equal(got[name][~idle], before[name][~idle]), name
    npt.assert_array_equal(got["bg_uv"][:, idle], before["bg_uv"][:, idle])


@pytest.mark.parametrize(
    ("kind", "over"),
    [
        ("constant", {}),
        ("saturated", {}),
        ("random", {"P_BLUR": 1.0}),
        ("random", {"P_RELEARN": 1.0, "P_ALPHA": 1.0}),
        ("random", {"P_SHADOW_LO": 0.0}),
        ("random", {"P_WEAK": 1e9, "P_ABSORB_FRAMES": 0}),
        ("saturated", {"P_BLUR": 1.0, "P_FLOOR": 1.0}),
        ("random", {"P_EDGE": 0.0}),
        ("saturated", {"P_EDGE": 8.0}),
        ("random", {"P_NEIGHBOURS": 0.0}),
        ("constant", {"P_NEIGHBOURS": 0.0, "P_RELEARN": 1.0, "P_ALPHA": 1.0}),
    ],
)
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (9, 14)])
def test_motion_step_matches_reference_on_edge_cases(kind: str, over: dict[str, float], shape: tuple[int, int]) -> None:
    luma = _frame(kind, shape, 5)
    u = _frame(kind, (max(1, shape[0] // 2), max(1, shape[1] // 2)), 6)
    v = _frame(kind, u.shape, 7)
    got, ref = _run_step(luma, 1, u, v, _params(**over), 5)
    _assert_step_equal(got, ref)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_motion_step_shadows_match_reference_among_absorbed_pixels(seed: int) -> None:
    """Shadows are tested only on rows with foreground, after the update: a grey background
    with dark, neutral patches (shadows) and coloured ones (objects) on some rows only, over
    pixels of which some are absorbed (their background moves this frame)."""
    rng = np.random.default_rng(seed)
    h, w = 24, 40
    luma = np.full((h, w), 150, np.uint8)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    v = u.copy()
    for k in range(4):  # bands of four rows with two empty rows between
        y, x = 6 * k, int(rng.integers(0, w - 8)) & ~1
        luma[y : y + 4, x : x + 8] = int(rng.integers(25, 50))  # ratio 0.17 to 0.33: in the shadow band
        if k % 2:
            u[y // 2 : y // 2 + 2, x // 2 : x // 2 + 4] = 190  # an object of that darkness, coloured
    st: dict[str, np.ndarray] = {
        "bg": np.full((h, w), 150, np.float32) + rng.normal(0, 1, (h, w)).astype(np.float32),
        "noise": np.ones((h, w), np.float32),
        "bg_uv": rng.normal(0, 0.5, (2, h, w)).astype(np.float32),
        "fg_count": rng.integers(0, 4, (h, w)).astype(np.float32),  # absorbed from 2 frames on
        "slope": np.zeros((h, w), np.uint8),
        "last": luma.copy(),  # on a grey background a shadow is told by its gradual arrival
    }
    params = _params()
    raw = np.ones((h, w), np.uint8)
    ref = naive.motion_step(luma, 1, u, v, params, raw=raw.copy(), **{k: a.copy() for k, a in st.items()})
    stats = np.zeros(K.N_STATS)
    K.motion_step(luma, 1, u, v, params, *_step_state(st), raw, st["last"], stats)
    _assert_step_equal(dict(st, raw=raw, stats=stats), ref)
    dark = luma < 100
    absorbed = dark & (ref["fg_count"] >= 3)  # counts 2 and 3 were absorbed this frame
    assert (raw[absorbed] == 1).any()  # absorbed shadow pixels
    assert (raw[dark] == 2).sum() == 2 * 32  # the two coloured patches stay objects


def test_motion_step_tells_cloud_shade_from_a_dark_object_by_its_contrast() -> None:
    """A textured grey background; rows 0-9 shaded 30% darker (hue and contrast kept), as they
    were on the last frame too, rows 12-19 covered at once by a flat object as dark on average
    (and as grey). With shade on, the shaded rows are shade (1) and the object stays
    foreground (2); with it off, both are foreground. Both agree with the NumPy reference. The
    neighbours' test is off: on a background of independent random grey levels a flat object's
    value is within the threshold of one of the 8 neighbours' backgrounds at most pixels (what
    that test is for on leaves)."""
    rng = np.random.default_rng(5)
    h, w = 24, 48
    bg = (100 + 80 * rng.random((h, w))).astype(np.float32)
    luma = np.rint(bg).astype(np.uint8)
    luma[:10] = np.rint(0.7 * bg[:10]).astype(np.uint8)
    luma[12:20] = round(0.7 * float(bg[12:20].mean()))  # flat: none of the texture it covers
    u = np.full((h // 2, w // 2), 128, np.uint8)
    st: dict[str, np.ndarray] = {
        "bg": bg,
        "noise": np.ones((h, w), np.float32),
        "bg_uv": np.zeros((2, h, w), np.float32),
        "fg_count": np.zeros((h, w), np.float32),
        "slope": np.zeros((h, w), np.uint8),
        "last": np.where(np.arange(h)[:, None] < 10, luma, np.rint(bg)).astype(np.uint8),
    }
    before = np.zeros((h, w), np.uint8)  # last frame's raw mask: the shaded rows were shade then
    before[:10] = 1
    for shade in (1.0, 0.0):
        params = _params(P_SHADE=shade, P_NEIGHBOURS=0.0)
        ref = naive.motion_step(luma, 1, u, u, params, raw=before.copy(), **{k: a.copy() for k, a in st.items()})
        got = {k: a.copy() for k, a in st.items()}
        raw = before.copy()
        stats = np.zeros(K.N_STATS)
        K.motion_step(luma, 1, u, u, params, *_step_state(got), raw, got["last"], stats)
        _assert_step_equal(dict(got, raw=raw, stats=stats), ref)
        mask = np.zeros_like(raw)
        K.majority_filter(raw, 1, np.zeros_like(raw), mask, np.zeros(w + 2 * K.MAX_RADIUS, np.uint8))
        # the object: shade where its flat face happens to match the texture it covers, but
        # enough foreground between to survive the clean-up
        assert mask[13:19, 2:-2].mean() > 0.9
        if shade:
            assert (raw[:10, 1:-1] == 1).all()
            assert not mask[:9].any()
        else:
            assert (raw[:10, 1:-1] == 2).mean() > 0.95
            assert mask[:9, 1:-1].mean() > 0.95


@pytest.mark.parametrize("width", [24, 27])  # read by words, and by bytes
@pytest.mark.parametrize("fg_at", [(), (0,), (5, 17), (-1,), (9,), (0, -1)])
def test_fg_span_finds_first_and_last_foreground(width: int, fg_at: tuple[int, ...]) -> None:
    row = np.zeros((1, width), np.uint8)
    row[0, ::3] = 1  # weak pixels do not count
    at = sorted(j % width for j in fg_at)
    row[0, at] = 2
    words = row.view(np.uint64) if width % 8 == 0 else np.zeros((1, 0), np.uint64)
    assert _fg_span_of(row, words) == ((at[0], at[-1] + 1) if at else (0, 0))


@njit(cache=True)
def _fg_span_of(row: np.ndarray, words: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """K._fg_span of row 0 (it takes pointers, which only compiled code can make)."""
    result: tuple[int, int] = K._fg_span(K._ptr(row, 0), K._ptr(words, 0), row.shape[1], words.shape[1])
    return result


@njit(cache=True)
def _write_through_pointers(a2: np.ndarray, a1: np.ndarray, i: int, j: int) -> None:  # pragma: no cover
    K._ptr(a2, i)[j] = 1.0  # row i, element j
    K._ptr_at(a2, i, j)[1] = 2.0  # element j + 1 of row i
    K._ptr(a1, j)[1] = 3.0  # element j + 1
    K._ptr(K._ptr(a2, i), j + 2)[0] = 4.0  # a pointer moved along: element j + 2 of row i


@pytest.mark.parametrize(("i", "j"), [(0, 0), (2, 3), (4, 4)])
def test_pointers_address_the_right_elements(i: int, j: int) -> None:
    a2 = np.zeros((5, 7), np.float32)
    a1 = np.zeros(7, np.float32)
    _write_through_pointers(a2, a1, i, j)
    want2 = np.zeros((5, 7), np.float32)
    want2[i, j] = 1.0
    want2[i, j + 1] = 2.0
    want2[i, j + 2] = 4.0
    want1 = np.zeros(7, np.float32)
    want1[j + 1] = 3.0
    npt.assert_array_equal(a2, want2)
    npt.assert_array_equal(a1, want1)


def test_motion_step_finds_shadow_and_object() -> None:
    # hand-made, in 2x2 blocks (one chroma sample each): a bluish grey road (bg 120, U - 128 =
    # -14); a shadow at 30 (ratio 0.25) whose colour darkened alike, and an object at 30 where
    # the road was bluer (its hue changed). The road's colour tells the shadow: on a neutral grey
    # road a darkening that arrives at once could be either.
    h, w = 2, 6
    luma = np.array([[120, 120, 30, 30, 30, 30]] * 2, dtype=np.uint8)
    u = np.array([[114, 125, 125]], dtype=np.uint8)
    v = np.full((1, 3), 128, np.uint8)
    st: dict[str, np.ndarray] = {
        "bg": np.full((h, w), 120, np.float32),
        "noise": np.ones((h, w), np.float32),
        "bg_uv": np.zeros((2, h, w), np.float32),  # centred
        "fg_count": np.zeros((h, w), np.float32),
        "slope": np.zeros((h, w), np.uint8),
    }
    st["bg_uv"][0] = -14
    st["bg_uv"][0, :, 4:] = -28
    raw = np.zeros((h, w), np.uint8)
    stats = np.zeros(K.N_STATS)
    last = np.full((h, w), 120, np.uint8)  # both arrived at once
    K.motion_step(luma, 1, u, v, _params(), *_step_state(st), raw, last, stats)
    assert raw.tolist() == [[0, 0, 1, 1, 2, 2]] * 2
    assert stats[K.S_FG] == 8
    assert stats[K.S_IDLE_COUNT] == 4
    assert st["bg"][0, 2] == 120  # foreground kept out of the background
    assert last.tolist() == luma.tolist()


@pytest.mark.parametrize("ratio", [0.3, 0.7])  # a deep shadow's darkening, and shade's
@pytest.mark.parametrize(
    ("arrived", "before", "want"),
    [("at once", 0, 2), ("gradually", 1, 1), ("gradually", 2, 2)],  # the last: an object that stands
)
def test_motion_step_darkening_of_a_flat_grey_view_is_shadow_only_if_it_came_gradually(
    ratio: float, arrived: str, before: int, want: int
) -> None:
    """On a flat, colourless grey background neither the hue nor the contrast can tell a shadow
    from a flat dark object (a grey bird on grey water, a dark car on a grey road): a darkening
    is shadow or shade only if it came gradually (within the threshold of the last frame, which
    was not foreground there). The kernel agrees with the NumPy reference."""
    h, w = 8, 16
    luma = np.full((h, w), 120, np.uint8)
    luma[2:6, 4:12] = round(120 * ratio)
    u = np.full((h // 2, w // 2), 128, np.uint8)
    st: dict[str, np.ndarray] = {
        "bg": np.full((h, w), 120, np.float32),
        "noise": np.ones((h, w), np.float32),
        "bg_uv": np.zeros((2, h, w), np.float32),
        "fg_count": np.zeros((h, w), np.float32),
        "slope": np.zeros((h, w), np.uint8),
        "last": np.full((h, w), 120, np.uint8) if arrived == "at once" else luma.copy(),
    }
    raw = np.full((h, w), before, np.uint8)
    ref = naive.motion_step(luma, 1, u, u, _params(), raw=raw.copy(), **{k: a.copy() for k, a in st.items()})
    stats = np.zeros(K.N_STATS)
    K.motion_step(luma, 1, u, u, _params(), *_step_state(st), raw, st["last"], stats)
    _assert_step_equal(dict(st, raw=raw, stats=stats), ref)
    # inside the patch (at its sharp left and right edges the contrast is an object's, not shade's)
    assert (raw[2:6, 5:11] == want).all()
    assert stats[K.S_FG] == 32


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", [*SHAPES, (24, 40)])  # 40: raw rows read eight pixels a word
def test_sample_veto_matches_reference(seed: int, shape: tuple[int, int]) -> None:
    """A new view draws the samples, a relearning frame and two ordinary ones update them (the
    ordinary ones test them first; the first of them in a young model, which updates more
    pixels): the same samples, textures, raw masks, demoted counts and random state as the NumPy
    reference."""
    rng = np.random.default_rng(seed)
    h, w = shape
    samples, texture = _samples(h, w, seed)
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_RNG] = 12345 + seed
    state = int(ctl[K.C_RNG])
    # the left half waves (their samples spread: a match there is background), the right half a
    # flat view (a match there counts half)
    xx = np.arange(w)[None, :] + np.zeros((h, 1))
    first = np.where(xx < (w + 1) // 2, 120 + 60 * np.sin(xx / 2.0), 100).astype(np.uint8)
    for k in range(4):
        # later frames: the first one's values give or take a few grey levels, some far off
        jitter = np.where(rng.random(shape) < 0.3, 40, 2)
        frame = first if k == 0 else np.clip(first + rng.integers(-jitter, jitter + 1), 0, 255).astype(np.uint8)
        # a new view, a relearning frame after it, two tested frames (the last with P_SAMPLES off)
        params = _params(P_RELEARN=float(k < 2), P_SAMPLES=float(k != 3))
        ctl[K.C_FIRST] = float(k == 0)
        ctl[K.C_FRAMES] = (0, 1, 3, 40)[k]
        noise = (rng.random(shape) * 6).astype(np.float32)
        raw = rng.integers(0, 3, shape, dtype=np.uint8)
        u = rng.integers(0, 256, (max(1, h // 2), max(1, w // 2)), dtype=np.uint8)
        v = rng.integers(100, 156, u.shape, dtype=np.uint8)
        bg_uv = rng.normal(0, 10, (2, h, w)).astype(np.float32)
        state, ref_raw, ref_samples, ref_texture, ref_n = naive.sample_veto(
            params, k == 0, state, frame, (u, v, bg_uv), noise, raw, samples, texture, int(ctl[K.C_FRAMES])
        )
        n = K.sample_veto(params, ctl, frame, u, v, bg_uv, noise, raw, samples, texture, np.zeros(shape, np.uint16))
        npt.assert_array_equal(raw, ref_raw)
        npt.assert_array_equal(samples, ref_samples)
        npt.assert_array_equal(texture, ref_texture)
        assert n == ref_n and ctl[K.C_RNG] == state
        if k == 3:  # with P_SAMPLES off nothing is demoted, the samples still learn
            assert n == 0


def test_sample_veto_explains_a_moving_background_not_an_object() -> None:
    """Samples drawn from a view of smooth waves explain the same view a pixel further on (as
    ripples or leaves look a frame later), which the running background calls foreground: their
    samples spread, so the waves (weak differences too) are background there and teach the
    samples. On the flat part of the view a uniform brightening within the samples' reach counts
    half (samples that do not spread say nothing about a moving background), and a flat patch
    brighter than the waves stays foreground; neither teaches the samples. All as the NumPy
    reference."""
    h, w = 32, 48
    yy, xx = np.mgrid[0:h, 0:w]
    view = np.rint(120 + 80 * np.sin(xx / 4.0 + yy / 4.0)).astype(np.uint8)
    view[:, 36:] = 120
    samples = np.zeros((h, w, K.SAMPLES), np.uint8)
    texture = np.zeros((h, w, K.SAMPLES), np.uint16)
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_FIRST] = 1.0
    noise = np.ones((h, w), np.float32)
    grey = np.full((1, 1), 128, np.uint8)  # no chroma planes
    bg_uv = np.zeros((2, h, w), np.float32)
    zeros = np.zeros((h, w), np.uint8)
    desc = np.zeros((h, w), np.uint16)
    K.sample_veto(_params(P_RELEARN=1.0), ctl, view, grey, grey, bg_uv, noise, zeros, samples, texture, desc)
    ctl[K.C_FIRST] = 0.0
    ctl[K.C_FRAMES] = 40
    moved = np.roll(view, 1, axis=1)
    moved[8:20, 16:28] = 250
    moved[:, 36:] = 140  # 20 brighter: beyond the threshold (14), within the reach (28)
    raw = np.full((h, w), 2, np.uint8)
    raw[22:26, 2:10] = 1  # weak differences on the waves and on the flat part
    raw[22:26, 40:44] = 1
    params = _params(P_CHROMA_THR=0.0)
    ref = naive.sample_veto(params, False, int(ctl[K.C_RNG]), moved, None, noise, raw, samples, texture, 40)
    before = samples.copy()
    raw_in = raw.copy()
    demoted = K.sample_veto(params, ctl, moved, grey, grey, bg_uv, noise, raw, samples, texture, desc)
    npt.assert_array_equal(raw, ref[1])
    npt.assert_array_equal(samples, ref[2])
    assert (raw[8:20, 16:28] == 2).all()
    waves = np.zeros((h, w), bool)
    waves[:, 1:33] = True  # rolled in from the other side at 0; near the flat part at 33 to 35
    waves[8:20, 16:28] = False
    # explained; background where the samples spread, half at the crests and troughs, where
    # the neighbourhood they came from is nearly flat
    assert (raw[waves] != 2).mean() > 0.7
    assert (raw[waves] == 0).mean() > 0.5
    assert (raw[22:26, 2:10] == 0).mean() > 0.5  # weak on the waves: background too where they spread
    assert (raw[:, 40:] == 1).all()  # beyond the 7x7 reach of the first draw from the waves
    assert demoted == np.count_nonzero((raw_in == 2) & (raw != 2)) == ref[4]  # foreground demoted
    assert (samples != before).any()  # the waves learned
    # neither the patch nor the flat part (background on no pixel there) learned, bar the
    # diffusion from the waves across their borders
    npt.assert_array_equal(samples[9:19, 17:27], before[9:19, 17:27])
    npt.assert_array_equal(samples[:, 40:], before[:, 40:])


def _veil_test(params: np.ndarray, frame: np.ndarray, bg: np.ndarray, noise: np.ndarray, raw: np.ndarray) -> int:
    """K.veil_test with fresh scratch arrays, ``raw`` changed in place."""
    h, w = raw.shape
    scratch = np.zeros((h, w), np.uint8)
    runs = np.zeros((h * (w // 2 + 1), 3), np.int32)
    parent = np.zeros(h * (w // 2 + 1), np.int32)
    n: int = K.veil_test(params, frame, bg, noise, raw, float(np.count_nonzero(raw == 2)), scratch, runs, parent)
    return n


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("veil", "report"), [(1.0, 1.0), (0.0, 1.0), (1.0, 0.0)])
def test_veil_test_matches_reference(seed: int, shape: tuple[int, int], veil: float, report: float) -> None:
    # a random view with flat patches of several sizes, brighter than the background or not, most
    # of them foreground, some at the frame's edges (the ring repeats the edge there)
    rng = np.random.default_rng(seed + 500)
    h, w = shape
    frame = rng.integers(0, 256, shape).astype(np.int64)
    bg = (rng.random(shape) * 255).astype(np.float32)
    noise = (rng.random(shape) * 6).astype(np.float32)
    raw = rng.integers(0, 3, shape, dtype=np.uint8)
    for k in range(4):  # a large patch (about a veil's size), then smaller ones on it
        bh = int(rng.integers(max(1, h // 3), h + 1)) if k == 0 else int(rng.integers(1, max(2, h // 4)))
        bw = int(rng.integers(max(1, w // 2), w + 1)) if k == 0 else int(rng.integers(1, max(2, w // 4)))
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        block = (slice(y, y + bh), slice(x, x + bw))
        level = int(rng.integers(40, 230))
        frame[block] = level + rng.integers(-6, 7, frame[block].shape)  # mostly within the floor (14)
        bg[block] = level - float(rng.choice([60.0, 20.0, 0.0, -30.0]))
        if k == 0 or rng.random() < 0.8:
            raw[block] = 2
    frame_u8 = frame.clip(0, 255).astype(np.uint8)
    params = _params(P_VEIL=veil, P_REPORT=report)
    ref_raw, ref_n = naive.veil_test(params, frame_u8, bg, noise, raw)
    n = _veil_test(params, frame_u8, bg, noise, raw)
    npt.assert_array_equal(raw, ref_raw)
    assert n == ref_n


def test_veil_test_demotes_smoke_over_the_view_and_keeps_what_is_in_it() -> None:
    """Dense smoke over two thirds of a textured view: flat, brighter than the trees it hides,
    foreground everywhere. It counts half; a dark figure in it and the smoke's pixels next to the
    figure (not flat there) stay foreground, and so does a small flat white car elsewhere (flat
    and brighter too, but not a fifth of the view). The same smoke over a tenth of the view stays
    foreground, and so does all of it with the veil test off. All as the NumPy reference."""
    h, w = 40, 60
    rng = np.random.default_rng(9)
    trees = rng.integers(40, 130, (h, w)).astype(np.float32)
    frame = np.rint(trees).astype(np.uint8)
    frame[:, :40] = 200 + rng.integers(-3, 4, (h, 40))  # the smoke
    frame[15:30, 15:21] = 30  # a figure in it
    frame[10:16, 48:56] = 235  # a white car over the trees, away from the smoke
    noise = np.full((h, w), 2.0, np.float32)
    raw = np.full((h, w), 2, np.uint8)
    params = _params(P_FLOOR=14.0, P_THR_SIGMA=3.5)
    got = raw.copy()
    n = _veil_test(params, frame, trees, noise, got)
    ref_raw, ref_n = naive.veil_test(params, frame, trees, noise, raw)
    npt.assert_array_equal(got, ref_raw)
    assert n == ref_n == np.count_nonzero(got == 1)
    assert (got[2:-2, 2:13] == 1).all() and (got[2:-2, 23:37] == 1).all()  # the smoke, away from the figure
    assert (got[15:30, 13:23] == 2).all()  # the figure, and the smoke two pixels around it
    assert (got[:, 38:] == 2).all()  # the smoke's edge next to the trees, the trees, the car
    small = raw.copy()
    small_frame = frame.copy()
    small_frame[:, 6:40] = np.rint(trees[:, 6:40]).astype(np.uint8)  # smoke over 6 of 60 columns
    assert _veil_test(params, small_frame, trees, noise, small) == 0
    assert (small == 2).all()
    assert _veil_test(_params(P_VEIL=0.0), frame, trees, noise, raw) == 0
    assert (raw == 2).all()


def _ghost_scene(shape: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(frame, prev, state, mask): a textured view; blocks that the background holds and the
    frame does not (ghosts), blocks that the frame holds and the background does not (objects),
    each in the mask, some old and some young, some moving; random specks besides."""
    rng = np.random.default_rng(seed + 400)
    h, w = shape
    view = rng.normal(100, 6, shape).clip(0, 255)
    frame = np.rint(view).astype(np.uint8)
    bg = view.astype(np.float32) + rng.normal(0, 1, shape).astype(np.float32)
    prev = frame.copy()
    mask = (rng.random(shape) < 0.03).astype(np.uint8)
    fg_count = rng.integers(0, 4, shape).astype(np.float32)
    for _ in range(max(1, h * w // 150)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        bh, bw = rng.integers(1, 9), rng.integers(1, 9)
        block = (slice(y, y + bh), slice(x, x + bw))
        if rng.random() < 0.5:
            bg[block] = 200.0 + rng.normal(0, 20, bg[block].shape).astype(np.float32)  # the one who left
        else:
            frame[block] = 30  # someone who came
        mask[max(0, y - 1) : y + bh + 1, max(0, x - 1) : x + bw + 1] = 1
        fg_count[block] = rng.choice([3.0, 12.0, 40.0])
        if rng.random() < 0.3:
            prev[block] = rng.integers(0, 256, prev[block].shape)
    st = {
        "bg": bg,
        "bg_uv": rng.normal(0, 10, (2, h, w)).astype(np.float32),
        "noise": (rng.random(shape) * 6).astype(np.float32),
        "fg_count": fg_count,
        "samples": _samples(h, w, seed)[0],
        "texture": _samples(h, w, seed)[1],
    }
    return frame, prev, st, mask


def _ghost_reset(
    params: np.ndarray, dt: float, frame: np.ndarray, prev: np.ndarray, chroma: tuple[np.ndarray, np.ndarray],
    st: dict[str, np.ndarray], mask: np.ndarray,
) -> int:  # fmt: skip
    """K.ghost_reset on ``mask`` labelled by K.label_runs, state changed in place."""
    h, w = mask.shape
    runs = np.zeros((h * (w // 2 + 1), 3), np.int32)
    parent = np.zeros(h * (w // 2 + 1), np.int32)
    n_runs = K.label_runs(mask, runs, parent)
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_DT] = dt
    return int(
        K.ghost_reset(
            params, ctl, frame, prev, *chroma, st["bg"], st["bg_uv"], st["noise"], st["fg_count"], st["samples"],
            st["texture"], mask, runs, parent, n_runs,
        )
    )  # fmt: skip


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", [*SHAPES, (24, 40), (60, 90)])
@pytest.mark.parametrize("ghosts", [1.0, 0.0])
@pytest.mark.parametrize("chroma_thr", [7.0, 0.0])
def test_ghost_reset_matches_reference(seed: int, shape: tuple[int, int], ghosts: float, chroma_thr: float) -> None:
    """The same background, chroma, counts, samples, textures, mask and count cleared as the
    NumPy reference, on scenes with ghosts, objects and specks, old and young, still and moving."""
    frame, prev, st, mask = _ghost_scene(shape, seed)
    h, w = shape
    rng = np.random.default_rng(seed)
    chroma = (rng.integers(0, 256, (max(1, h // 2), max(1, w // 2)), dtype=np.uint8),
              rng.integers(0, 256, (max(1, h // 2), max(1, w // 2)), dtype=np.uint8))  # fmt: skip
    params = _params(P_GHOSTS=ghosts, P_CHROMA_THR=chroma_thr, P_FLOOR=14.0, P_THR_SIGMA=3.5)
    ref_st, ref_mask, ref_n = naive.ghost_reset(params, 0.04, frame, prev, chroma, st, mask)
    n = _ghost_reset(params, 0.04, frame, prev, chroma, st, mask)
    for k, a in ref_st.items():
        npt.assert_array_equal(st[k], a, err_msg=k)
    npt.assert_array_equal(mask, ref_mask)
    assert n == ref_n
    if ghosts == 0.0:
        assert n == 0


# ghost_reset's grey scenes below: no chroma planes, the defaults' threshold
_NO_CHROMA = (np.full((1, 1), 128, np.uint8), np.full((1, 1), 128, np.uint8))
_GREY_PARAMS = _params(P_CHROMA_THR=0.0)


def _old_still_state(bg: np.ndarray) -> dict[str, np.ndarray]:
    """ghost_reset's state for a grey view with background ``bg``, every pixel foreground long
    enough to be a ghost's."""
    h, w = bg.shape
    return {
        "bg": bg,
        "bg_uv": np.zeros((2, h, w), np.float32),
        "noise": np.ones((h, w), np.float32),
        "fg_count": np.full((h, w), 40.0, np.float32),
        "samples": np.zeros((h, w, K.SAMPLES), np.uint8),
        "texture": np.zeros((h, w, K.SAMPLES), np.uint16),
    }


def test_ghost_reset_learns_what_left_and_keeps_who_stays() -> None:
    """A patch the background holds from the first frame, gone from the frame (a ghost), is
    learned and leaves the mask once it has been foreground for _GHOST_AFTER_S; a patch the
    frame holds and the background does not (a person standing still), as old, stays; so do a
    young ghost and a ghost that still moves."""
    h, w = 40, 120
    view = np.rint(np.random.default_rng(4).normal(100, 4, (h, w))).astype(np.uint8)
    bg = view.astype(np.float32)
    frame = view.copy()
    bg[10:30, 5:25] = 220.0  # left
    frame[10:30, 35:55] = 20  # stays
    bg[10:30, 65:85] = 220.0  # left, but too recently
    bg[10:30, 95:115] = 220.0  # left, but the frame moves there (leaves in front of the lens)
    prev = frame.copy()
    prev[10:30, 95:115] = 180
    mask = np.zeros((h, w), np.uint8)
    for x0 in (5, 35, 65, 95):
        mask[9:31, x0 - 1 : x0 + 21] = 1
    dt = 0.04
    need = K._GHOST_AFTER_S / (dt * K.LEARN_EVERY)
    st = _old_still_state(bg)
    st["fg_count"][:] = np.ceil(need)
    st["fg_count"][:, 60:90] = np.floor(need / 2)
    cleared = _ghost_reset(_GREY_PARAMS, dt, frame, prev, _NO_CHROMA, st, mask)
    assert cleared == 22 * 22
    assert not mask[:, :30].any() and mask[:, 30:].sum() == 3 * 22 * 22
    npt.assert_array_equal(st["bg"][9:31, 4:26], frame[9:31, 4:26])
    assert (st["samples"][9:31, 4:26] == frame[9:31, 4:26, None]).all()
    assert not st["fg_count"][9:31, 4:26].any() and st["fg_count"][:, 30:].all()
    assert (st["bg"][10:30, 65:85] == 220.0).all() and (st["bg"][10:30, 95:115] == 220.0).all()


def test_ghost_reset_reads_no_outline_on_the_frames_edge() -> None:
    """Someone close to the camera fills the view's lower edge; the mask holds the middle of their
    dark coat (its sides passed as shadow). Along the frame's edge the coat is flat and the
    background behind it has a railing: read as outline, that edge was a ghost's (the
    background's edges, not the frame's). The frame's edge is no outline, and the coat stays."""
    h, w = 40, 60
    frame = np.full((h, w), 100, np.uint8)
    frame[15:, 5:55] = 20
    bg = np.full((h, w), 100.0, np.float32)
    bg[h - 3 :, 20:40:2] = 230.0
    mask = np.zeros((h, w), np.uint8)
    mask[22:, 15:45] = 1
    st = _old_still_state(bg)
    assert _ghost_reset(_GREY_PARAMS, 0.04, frame, frame.copy(), _NO_CHROMA, st, mask) == 0
    assert mask[22:, 15:45].all()


def test_ghost_reset_reads_no_outline_around_holes() -> None:
    """SBI PeopleAndFoliage: a dark coat close to the lens fills the view's lower left corner, over
    a bright car learned as background. Where the coat matches the car's dark tyre the mask has
    holes, and around them the background has the tyre's edges and the frame the flat coat: read
    as outline, they made the coat a ghost (5.0 here), and it was learned. A ghost's evidence is
    its outer contour, where the departed object ended: holes are no outline, and the coat stays."""
    h, w = 40, 60
    frame = np.full((h, w), 100, np.uint8)
    frame[15:, :30] = 20
    bg = np.full((h, w), 100.0, np.float32)
    bg[15:, :30] = 230.0
    bg[22:28, 8:16] = bg[30:36, 18:24] = 20.0  # the tyre: as dark as the coat
    mask = (np.abs(frame - bg) > 14).astype(np.uint8)
    st = _old_still_state(bg)
    kept = mask.copy()
    ref_st, ref_mask, ref_n = naive.ghost_reset(_GREY_PARAMS, 0.04, frame, frame.copy(), None, st, mask)
    assert _ghost_reset(_GREY_PARAMS, 0.04, frame, frame.copy(), _NO_CHROMA, st, mask) == 0 == ref_n
    npt.assert_array_equal(mask, kept)
    npt.assert_array_equal(ref_mask, kept)
    npt.assert_array_equal(st["bg"], ref_st["bg"])


def test_ghost_reset_reads_no_outline_where_the_gradient_reaches_the_frames_edge() -> None:
    """SBI CAVIAR2: a camera whose last two columns darken (a border of its own, 135 to 115 and
    90) and a ghost that reaches the column before the last. Read there, the outline's gradient
    is the border's, in the frame and not in the ghost's background, and the ghost kept for the
    whole sequence. Outline pixels whose gradient reaches the frame's outer rows or columns are
    none; the rest of the outline is the ghost's."""
    h, w = 40, 60
    frame = np.full((h, w), 135, np.uint8)
    frame[:, w - 2], frame[:, w - 1] = 115, 90
    bg = frame.astype(np.float32)
    bg[10:26, 53 : w - 1] = 85.0  # someone dark at the right edge in the first frame, since gone
    mask = np.zeros((h, w), np.uint8)
    mask[10:26, 53 : w - 1] = 1
    st = _old_still_state(bg)
    assert _ghost_reset(_GREY_PARAMS, 0.04, frame, frame.copy(), _NO_CHROMA, st, mask) == 16 * 6
    assert not mask.any() and (st["bg"][10:26, 53 : w - 1] == frame[10:26, 53 : w - 1]).all()


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4])
def test_majority_filter_matches_reference(seed: int, shape: tuple[int, int], radius: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.choice(np.array([0, 1, 2], np.uint8), size=shape, p=[0.5, 0.2, 0.3])
    ignore = (rng.random(shape) < 0.1).astype(np.uint8)
    out = np.full(shape, 7, np.uint8)
    colsum = np.zeros(shape[1] + 2 * K.MAX_RADIUS, np.uint8)
    n = K.majority_filter(mask, radius, ignore, out, colsum)
    ref = naive.majority_filter(mask, radius, ignore)
    npt.assert_allclose(out, ref, atol=0)
    assert n == int(ref.sum())


@pytest.mark.parametrize("value", [0, 1, 2])
def test_majority_filter_constant_masks(value: int) -> None:
    mask = np.full((6, 9), value, np.uint8)
    ignore = np.zeros_like(mask)
    out = np.zeros_like(mask)
    K.majority_filter(mask, 2, ignore, out, np.zeros(9 + 2 * K.MAX_RADIUS, np.uint8))
    npt.assert_allclose(out, naive.majority_filter(mask, 2, ignore), atol=0)


def _label(mask: np.ndarray, n_max: int = 4096) -> tuple[int, np.ndarray]:
    h, w = mask.shape
    runs = np.zeros((h * (w // 2 + 1), 3), np.int32)
    parent = np.zeros(h * (w // 2 + 1), np.int32)
    boxes = np.zeros((n_max, K.BOX_FIELDS), np.int64)
    n = K.label_components(mask, runs, parent, boxes)
    return n, boxes[: min(n, n_max)]


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.1, 0.45, 0.8])
def test_label_components_matches_reference(seed: int, shape: tuple[int, int], density: float) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random(shape) < density).astype(np.uint8)
    n, boxes = _label(mask)
    ref = naive.label_components(mask)
    assert n == len(ref)
    npt.assert_allclose(boxes, ref, atol=0)


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((1, 1), np.uint8),
        np.ones((1, 1), np.uint8),
        np.ones((5, 7), np.uint8),
        np.eye(6, dtype=np.uint8),  # diagonal: one component under 8-connectivity
        np.fliplr(np.eye(6, dtype=np.uint8)).copy(),
        np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0], [1, 1, 1, 1, 1]], np.uint8),  # U-shapes merge late
    ],
)
def test_label_components_edge_cases(mask: np.ndarray) -> None:
    n, boxes = _label(mask)
    ref = naive.label_components(mask)
    assert n == len(ref)
    npt.assert_allclose(boxes, ref, atol=0)


def test_label_components_caps_output_but_counts_all() -> None:
    mask = np.zeros((5, 20), np.uint8)
    mask[::2, ::2] = 1  # 30 isolated pixels
    n, boxes = _label(mask, n_max=4)
    assert n == 30
    npt.assert_allclose(boxes, naive.label_components(mask)[:4], atol=0)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize(("min_area", "keep"), [(1, 1000), (3, 4), (1, 1), (50, 10), (2, 0)])
def test_select_boxes_matches_reference(seed: int, min_area: int, keep: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    boxes = rng.integers(0, 9, (48, K.BOX_FIELDS)).astype(np.int64)  # many equal areas: ties
    ref = naive.select_boxes(boxes[:n], min_area, keep)
    got = boxes.copy()
    k = K.select_boxes(got, n, min_area, keep)
    assert k == len(ref)
    npt.assert_allclose(got[:k], ref, atol=0)


def test_select_boxes_reads_only_the_rows_it_holds() -> None:
    boxes = np.zeros((3, K.BOX_FIELDS), np.int64)
    boxes[:, 4] = [5, 9, 7]
    assert K.select_boxes(boxes, 10, 1, 10) == 3  # n beyond the table: only its rows count
    assert boxes[:, 4].tolist() == [9, 7, 5]


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_zone_counts_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = (rng.random((23, 37)) < 0.3).astype(np.uint8)
    bits = rng.integers(0, 2**5, (23, 37)).astype(np.uint32)
    counts = np.full(5, 99, np.int64)
    K.zone_counts(mask, bits, counts)
    npt.assert_allclose(counts, naive.zone_counts(mask, bits, 5), atol=0)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (9, 16), (45, 80)])
@pytest.mark.parametrize("kind", ["random", "constant", "saturated"])
def test_tamper_stats_matches_reference(seed: int, shape: tuple[int, int], kind: str) -> None:
    cur = _frame(kind, shape, seed).astype(np.float32)
    ref = np.random.default_rng(seed + 9).integers(0, 256, shape).astype(np.float32)
    out = np.zeros(K.N_TAMPER_STATS)
    K.tamper_stats(cur, ref, out)
    npt.assert_allclose(out, naive.tamper_stats(cur, ref), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", [(1, 1), (4, 5), (7, 9), (9, 16), (45, 80)])
@pytest.mark.parametrize("radius", [0, 1, 3])
@pytest.mark.parametrize("kind", ["random", "constant", "saturated", "related"])
def test_blurred_edge_correlation_matches_reference(seed: int, shape: tuple[int, int], radius: int, kind: str) -> None:
    rng = np.random.default_rng(seed + 9)
    ref = rng.integers(0, 256, shape).astype(np.float32)
    if kind == "related":  # the reference shifted by a pixel, plus noise: a shaking camera
        cur = np.roll(ref, 1, axis=1) + rng.normal(0, 8, shape).astype(np.float32)
    else:
        cur = _frame(kind, shape, seed).astype(np.float32)
    h, w = shape
    scratch = np.full((3, max(0, h - 2), max(0, w - 2)), np.nan, np.float32)
    got = K.blurred_edge_correlation(cur, ref, radius, scratch)
    assert got == pytest.approx(naive.blurred_edge_correlation(cur, ref, radius), abs=1e-5)
    if radius == 0:  # no blur: the plain edge-map correlation of tamper_stats
        out = np.zeros(K.N_TAMPER_STATS)
        K.tamper_stats(cur, ref, out)
        assert got == pytest.approx(out[K.T_CORR], abs=1e-5)


def test_blurred_edge_correlation_tolerates_a_shift_of_about_its_radius() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (60, 80)).astype(np.float32)
    cur = np.roll(ref, (2, -2), axis=(0, 1))
    scratch = np.zeros((3, 58, 78), np.float32)
    assert K.blurred_edge_correlation(cur, ref, 0, scratch) < 0.1  # sharp maps: unrelated
    assert K.blurred_edge_correlation(cur, ref, 3, scratch) > 0.4
    far = np.roll(ref, (12, 16), axis=(0, 1))  # a turned view: unrelated at any scale used
    assert K.blurred_edge_correlation(far, ref, 3, scratch) < 0.1


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("step", [1, 2, 5])
@pytest.mark.parametrize("kind", ["random", "constant", "saturated"])
def test_plane_spread_matches_reference(shape: tuple[int, int], step: int, kind: str) -> None:
    plane = _frame(kind, shape, step)
    npt.assert_allclose(K.plane_spread(plane, step), naive.plane_spread(plane, step), rtol=1e-9, atol=1e-9)


def test_plane_spread_of_padded_rows_reads_only_the_view() -> None:
    padded = np.full((6, 16), 255, np.uint8)
    padded[:, :10] = np.arange(10, dtype=np.uint8)
    assert K.plane_spread(padded[:, :10], 1) == pytest.approx(np.arange(10).std())


SHIFTS = ((0.0, 0.0), (0.3, -0.7), (-2.25, 1.5), (3.0, 0.0), (-40.5, 7.25))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("shift", SHIFTS)
@pytest.mark.parametrize("kind", ["random", "constant", "saturated"])
def test_shift_sample_matches_reference(shape: tuple[int, int], shift: tuple[float, float], kind: str) -> None:
    src = _frame(kind, shape, 5)
    for plane in (src, src.astype(np.float32) * np.float32(0.999)):  # uint8 and float32 sources
        out = np.full(shape, 7, np.uint8)
        K.shift_sample(plane, shift[0], shift[1], out)
        ref = naive.shift_sample(plane, *shift)
        # the same weights summed in another order: a value on a .5 may round the other way
        assert np.abs(out.astype(int) - ref).max() <= 1
        assert np.mean(out != ref) < 0.01


def test_shift_sample_whole_pixels_move_the_picture() -> None:
    src = _frame("random", (20, 30), 2)
    out = np.zeros_like(src)
    K.shift_sample(src, 2.0, -1.0, out)  # out(p) = src(p + (2, -1))
    npt.assert_array_equal(out[1:, :-2], src[:-1, 2:])
    npt.assert_array_equal(out[0, :-2], src[0, 2:])  # above the top: the top row repeats


@pytest.mark.parametrize("shape", [(9, 16), (48, 64), (45, 80)])
@pytest.mark.parametrize("shift", SHIFTS)
def test_lk_step_matches_reference(shape: tuple[int, int], shift: tuple[float, float]) -> None:
    rng = np.random.default_rng(shape[0])
    cur = rng.integers(0, 256, shape).astype(np.float32)
    bg = rng.integers(0, 256, shape).astype(np.float32)
    out = np.full(9, np.nan)
    K.lk_step(cur, bg, shift[0], shift[1], 60.0, out)
    npt.assert_allclose(out, naive.lk_step(cur, bg, *shift, 60.0), rtol=1e-9, atol=1e-6)


# maps from a frame's pixels to the old model's: none, whole pixels, a pan with shear and zoom
# (UCSD landing's kind), a turn; coefficients off the halves, where rounding may go either way
FOLLOW_MAPS = (
    ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    ((1.0, 0.0, -3.0), (0.0, 1.0, 2.0)),
    ((1.007, -0.0121, -6.413), (0.0013, 1.006, 1.377)),
    ((0.9659, -0.2588, 4.11), (0.2588, 0.9659, -3.07)),
)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("inv", FOLLOW_MAPS)
def test_follow_map_matches_reference(shape: tuple[int, int], inv: tuple[tuple[float, ...], ...]) -> None:
    src = np.full(shape, 99, np.int32)
    fresh = K.follow_map(np.array(inv), src)
    ref, ref_fresh = naive.follow_map(np.array(inv), shape)
    npt.assert_array_equal(src, ref)
    assert fresh == ref_fresh


def test_follow_map_of_whole_pixels_moves_the_picture() -> None:
    src = np.zeros((20, 30), np.int32)
    # the frame's (x, y) shows the old model's (x - 3, y + 2): the view moved 3 right, 2 up
    assert K.follow_map(np.array(FOLLOW_MAPS[1]), src) == 3 * 20 + 2 * 30 - 3 * 2
    a = np.arange(600, dtype=np.float32)
    K.gather_pixels(a, np.zeros_like(a), src.reshape(600))
    moved = a.reshape(20, 30)
    old = np.arange(600, dtype=np.float32).reshape(20, 30)
    npt.assert_array_equal(moved[:-2, 3:], old[2:, :-3])
    npt.assert_array_equal(moved[-2:, :], old[-2:, :])  # brought into view: left for renew_pixels


@pytest.mark.parametrize("inv", FOLLOW_MAPS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint64])
def test_gather_pixels_matches_reference(inv: tuple[tuple[float, ...], ...], dtype: type) -> None:
    h, w = 17, 31
    rng = np.random.default_rng(h)
    a: np.ndarray = rng.integers(0, 250, h * w).astype(dtype)
    src = np.zeros((h, w), np.int32)
    K.follow_map(np.array(inv), src)
    ref = naive.gather_pixels(a, src.reshape(-1))
    K.gather_pixels(a, np.zeros_like(a), src.reshape(-1))
    npt.assert_array_equal(a, ref)
    # a strided column: a pixel's textures are moved as two uint64 columns of one array
    wide = rng.integers(0, 2**63, (h * w, 2), dtype=np.uint64)
    ref = naive.gather_pixels(wide[:, 1], src.reshape(-1))
    K.gather_pixels(wide[:, 1], np.zeros(h * w, np.uint64), src.reshape(-1))
    npt.assert_array_equal(wide[:, 1], ref)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("coloured", [True, False])
def test_renew_pixels_matches_reference(shape: tuple[int, int], coloured: bool) -> None:
    h, w = shape
    rng = np.random.default_rng(h * w)
    state = (
        rng.random(shape, np.float32) * 255,
        rng.random(shape, np.float32) * 9,
        rng.normal(0, 10, (2, h, w)).astype(np.float32),
        rng.integers(0, 50, shape).astype(np.float32),
        rng.integers(0, 9, shape, dtype=np.uint8),
        rng.integers(0, 3, shape, dtype=np.uint8),
        rng.integers(0, 256, shape, dtype=np.uint8),
        rng.integers(0, 256, shape, dtype=np.uint8),
        rng.integers(0, 256, (h, w, K.SAMPLES), dtype=np.uint8),
        rng.integers(0, 65536, (h, w, K.SAMPLES), dtype=np.uint16),
    )
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    u = (
        rng.integers(0, 256, (max(1, h // 2), max(1, w // 2)), dtype=np.uint8)
        if coloured
        else np.zeros((1, 1), np.uint8)
    )
    v = rng.integers(0, 256, u.shape, dtype=np.uint8) if coloured else u
    src = np.where(rng.random(shape) < 0.3, -1, 0).astype(np.int32)
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_RNG] = 777
    ref_rng, ref = naive.renew_pixels(frame, (u, v) if coloured else None, src, 2.0, 777, state)
    K.renew_pixels(frame, u, v, coloured, src, 2.0, ctl, state)
    for got, want in zip(state, ref, strict=True):
        npt.assert_array_equal(got, want)
    assert ctl[K.C_RNG] == ref_rng


def _ctl_params(rng: np.random.Generator) -> np.ndarray:
    p = _params()
    p[K.P_MIN_THRESHOLD] = 14.0
    p[K.P_FLOOR_GAIN] = 2.5
    p[K.P_CHROMA_SETTING] = 7.0
    p[K.P_ABSORB_S] = float(rng.choice([0.5, 10.0, 3600.0]))
    p[K.P_BG_ALPHA] = float(rng.choice([0.0005, 0.04, 0.5]))
    p[K.P_RELEARN_S] = 1.0
    p[K.P_IDLE_FRACTION] = 0.02
    p[K.P_IDLE_ALPHA] = 0.05
    return p


@pytest.mark.parametrize("seed", range(8))
def test_frame_control_and_feedback_match_reference_over_a_stream(seed: int) -> None:
    # a stream with jittered, repeated and backward timestamps, chroma coming and going, idle
    # and busy frames, and frames without a mask (global changes unless learning/relearning)
    rng = np.random.default_rng(seed)
    params = _ctl_params(rng)
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_DT] = 0.04
    ctl[K.C_RELEARN_UNTIL] = -1e300
    cnt = np.full((4, 5), 3.0, np.float32)
    t = 0.0
    for _ in range(60):
        t += float(rng.choice([0.04, 0.0, -0.1, 0.5, 9.0], p=[0.7, 0.1, 0.05, 0.1, 0.05]))
        ctl[K.C_T] = t
        ctl[K.C_CHROMA] = float(rng.random() < 0.8)
        ref_p, ref_c = naive.frame_control(params, ctl)
        K.frame_control(params, ctl)
        npt.assert_allclose(params, ref_p, rtol=1e-12, atol=0)
        npt.assert_allclose(ctl, ref_c, rtol=1e-12, atol=0)
        stats = np.zeros(K.N_STATS)
        stats[K.S_FG] = float(rng.choice([0, 1, 15]))
        stats[K.S_IDLE_COUNT] = cnt.size - stats[K.S_FG]
        stats[K.S_IDLE_ABSDIFF] = float(rng.random() * 40)
        stats[K.S_CHROMA] = float(rng.choice([0.0, 0.04, 0.3, 0.8]))
        n = int(rng.choice([-1, 0, 2], p=[0.2, 0.4, 0.4]))
        ref_c, ref_cnt = naive.frame_feedback(params, ctl, stats, cnt, n)
        K.frame_feedback(params, ctl, stats, cnt, n)
        npt.assert_allclose(ctl, ref_c, rtol=1e-12, atol=0)
        npt.assert_allclose(cnt, ref_cnt, atol=0)
        cnt += 1


def test_motion_frame_is_control_step_cleanup_labels_selection_feedback() -> None:
    rng = np.random.default_rng(11)
    h, w = 30, 40
    luma = rng.integers(0, 256, (h, w), dtype=np.uint8)
    u = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    v = rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)
    params = _ctl_params(rng)
    params[K.P_RADIUS], params[K.P_MIN_AREA], params[K.P_MAX_BOXES] = 1, 3, 5
    ctl = np.zeros(K.N_CTL)  # the sixth frame of a stream, chroma seen before: a reporting frame
    ctl[K.C_T], ctl[K.C_T_LAST], ctl[K.C_DT], ctl[K.C_FRAMES] = 1.0, 0.96, 0.04, 5
    ctl[K.C_CHROMA], ctl[K.C_CHROMA_SEEN], ctl[K.C_RELEARN_UNTIL] = 1.0, 1.0, -1e300
    ctl[K.C_CHROMA_LEVEL] = -1.0  # no colour level yet (the colour-switch test has its own test)
    ctl_in = ctl.copy()
    st = _state(h, w, 11)
    st["fg_count"][:] = 40.0  # old foreground: the ghost test looks at every component
    ref_p, ref_c = naive.frame_control(params, ctl)
    assert ref_p[K.P_REPORT] == 1.0
    raw = np.zeros((h, w), np.uint8)
    ref = naive.motion_step(luma, 1, u, v, ref_p, raw=raw.copy(), **{k: a.copy() for k, a in st.items()})
    samples, texture = _samples(h, w, 11)
    prev = st["last"].copy()
    ref_rng, ref_raw, ref_samples, ref_texture, _ = naive.sample_veto(
        ref_p, False, 0, ref["last"], (u, v, ref["bg_uv"]), ref["noise"], ref["raw"], samples, texture, 5
    )
    ref_raw, _ = naive.veil_test(ref_p, ref["last"], ref["bg"], ref["noise"], ref_raw)
    ref_mask = naive.majority_filter(ref_raw, 1, np.zeros((h, w), np.uint8))
    ref_ghost_in = {k: ref[k] for k in ("bg", "bg_uv", "noise", "fg_count")}
    ref_ghost_in |= {"samples": ref_samples, "texture": ref_texture}
    ref_ghost, ref_mask, _ = naive.ghost_reset(ref_p, 0.04, ref["last"], prev, (u, v), ref_ghost_in, ref_mask)
    ref_boxes = naive.select_boxes(naive.label_components(ref_mask), 3, 5)
    ref_c, _ = naive.frame_feedback(ref_p, ref_c, ref["stats"], ref_ghost["fg_count"], len(ref_boxes))
    ref_c[K.C_RNG] = ref_rng
    mask = np.zeros((h, w), np.uint8)
    runs = np.zeros((h * (w // 2 + 1), 3), np.int32)
    parent = np.zeros(h * (w // 2 + 1), np.int32)
    boxes = np.zeros((512, K.BOX_FIELDS), np.int64)
    stats = np.zeros(K.N_STATS)
    state = (*_step_state(st), raw, st["last"], np.zeros((h, w), np.uint8), samples, texture)
    slope_in = st["slope"].copy()
    scratch = (np.zeros(w + 2 * K.MAX_RADIUS, np.uint8), runs, parent)
    ignore = np.zeros((h, w), np.uint8)
    n = K.motion_frame(luma, u, v, True, 1.0, 1, params, ctl_in, state, ignore, mask, scratch, boxes, stats)
    npt.assert_allclose(mask, ref_mask, atol=0)
    npt.assert_allclose(st["bg"], ref_ghost["bg"], rtol=1e-5, atol=1e-3)
    npt.assert_array_equal(samples, ref_ghost["samples"])
    assert n == len(ref_boxes)
    npt.assert_allclose(boxes[:n], ref_boxes, atol=0)
    assert stats[K.S_MASK] == ref_mask.sum()
    npt.assert_allclose(ctl_in, ref_c, rtol=1e-6, atol=1e-9)  # idle level: float32 sums in the step
    npt.assert_array_equal(st["slope"], slope_in)  # five frames before: not a refresh frame
    # raw foreground above P_GLOBAL in a frame unrelated to the background: motion, not a global change
    params[K.P_GLOBAL] = 0.0
    assert K.motion_frame(luma, u, v, True, 1.04, 1, params, ctl_in, state, ignore, mask, scratch, boxes, stats) >= 0
    assert stats[K.S_CORR] ** 2 <= K.GLOBAL_EXPLAINED and ctl_in[K.C_GLOBAL] == 0.0
    # the same view relit: a global change, no mask, and a relearning window opens
    relit = np.clip(st["bg"] * 1.5 + 30, 0, 255).astype(np.uint8)
    assert K.motion_frame(relit, u, v, True, 1.08, 1, params, ctl_in, state, ignore, mask, scratch, boxes, stats) == -1
    assert stats[K.S_CORR] ** 2 > K.GLOBAL_EXPLAINED
    assert not mask.any()
    assert ctl_in[K.C_GLOBAL] == 1.0 and ctl_in[K.C_RELEARN_UNTIL] == 1.08 + params[K.P_RELEARN_S]
    assert not st["fg_count"].any()


@pytest.mark.parametrize("ref", [-1.0, 0.0, 0.049, 0.05, 0.149, 0.15, 0.9])
@pytest.mark.parametrize("spread", [0.0, 0.049, 0.05, 0.149, 0.15, 0.9])
@pytest.mark.parametrize("chroma_thr", [0.0, 7.0])
@pytest.mark.parametrize("corr", [-1.0, 0.0, 0.7, 0.71, 1.0])  # around GLOBAL_EXPLAINED's root, 0.707
def test_colour_jump_matches_reference(ref: float, spread: float, chroma_thr: float, corr: float) -> None:
    params = np.zeros(K.N_PARAMS)
    params[K.P_CHROMA_REF], params[K.P_CHROMA_THR] = ref, chroma_thr
    stats = np.zeros(K.N_STATS)
    stats[K.S_CHROMA], stats[K.S_CORR] = spread, corr
    assert K._colour_jump(params, stats) == naive.colour_jump(params, stats)


def _colour_stream(
    h: int, w: int, rng: np.random.Generator
) -> tuple[Callable[[float, np.ndarray, np.ndarray, np.ndarray], int], np.ndarray, np.ndarray]:
    """A stream of (h, w) frames for the colour-switch tests: ``frame(t, luma, u, v)`` runs
    :func:`motion_frame` and returns its result; its parameter and control vectors come with it."""
    params = _ctl_params(rng)
    params[K.P_GLOBAL], params[K.P_RADIUS], params[K.P_MIN_AREA], params[K.P_MAX_BOXES] = 0.9, 1, 1, 8
    params[K.P_BG_ALPHA], params[K.P_ABSORB_S] = 0.04, 10.0
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_DT], ctl[K.C_RELEARN_UNTIL], ctl[K.C_CHROMA_LEVEL] = 0.04, -1e300, -1.0
    st = _state(h, w, 5)
    state = (*_step_state(st), np.zeros((h, w), np.uint8), st["last"], np.zeros((h, w), np.uint8), *_samples(h, w, 5))
    scratch = (np.zeros(w + 2 * K.MAX_RADIUS, np.uint8), np.zeros((h * (w // 2 + 1), 3), np.int32),
               np.zeros(h * (w // 2 + 1), np.int32))  # fmt: skip
    ignore = np.zeros((h, w), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    boxes = np.zeros((64, K.BOX_FIELDS), np.int64)
    stats = np.zeros(K.N_STATS)

    def frame(t: float, luma: np.ndarray, cu: np.ndarray, cv: np.ndarray) -> int:
        return int(K.motion_frame(luma, cu, cv, True, t, 1, params, ctl, state, ignore, mask, scratch, boxes, stats))

    return frame, params, ctl


def test_a_view_losing_its_colour_at_once_is_a_global_change() -> None:
    # the camera's IR mode: the same luma, the colour gone; then colour back after relearning
    rng = np.random.default_rng(5)
    h, w = 36, 48
    grey = np.full((h, w), 120, np.uint8)
    u = np.clip(128 + rng.normal(0, 10, (h // 2, w // 2)), 0, 255).astype(np.uint8)
    v = np.clip(128 + rng.normal(0, 10, (h // 2, w // 2)), 0, 255).astype(np.uint8)
    flat = np.full_like(u, 128)
    stream, params, ctl = _colour_stream(h, w, rng)

    def frame(t: float, cu: np.ndarray, cv: np.ndarray) -> int:
        return stream(t, grey, cu, cv)

    for k in range(10):  # a steady colour view: learned, then nothing moves
        frame(k * 0.04, u, v)
    assert frame(0.4, u, v) == 0
    assert ctl[K.C_CHROMA_LEVEL] > 0.5  # most of the view in colour
    assert frame(0.44, flat, flat) == -1  # colour lost: no mask, no boxes
    assert ctl[K.C_GLOBAL] == 1.0
    t = 0.48
    while t < 0.44 + params[K.P_RELEARN_S] + 0.1:  # the relearning window learns the grey view
        frame(t, flat, flat)
        t += 0.04
    assert ctl[K.C_CHROMA_LEVEL] == 0.0
    assert frame(t, flat, flat) == 0
    assert frame(t + 0.04, u, v) == -1  # and the colour coming back is one too
    assert ctl[K.C_GLOBAL] == 1.0


def test_colour_that_brings_its_own_structure_is_motion_not_a_switch() -> None:
    # SBI Snellen: green leaves sweep in front of a grey eye chart. The colour arrives at once, as
    # when an IR mode ends, but the leaves replace the chart's structure: motion, not a new view
    rng = np.random.default_rng(9)
    h, w = 36, 48
    chart = np.kron(rng.integers(0, 2, (h // 4, w // 4)) * 200 + 30, np.ones((4, 4))).astype(np.uint8)
    grey = np.full((h // 2, w // 2), 128, np.uint8)
    stream, _, ctl = _colour_stream(h, w, rng)
    for k in range(10):
        stream(k * 0.04, chart, grey, grey)
    assert stream(0.4, chart, grey, grey) == 0
    leaves = chart.copy()
    leaves[:, : w * 2 // 3] = np.kron(rng.integers(60, 140, (h // 4, w // 6)), np.ones((4, 4))).astype(np.uint8)
    green = grey.copy()
    green[:, : w // 3] = 96
    assert stream(0.44, leaves, green, green) >= 1  # boxes, not a relearning window
    assert ctl[K.C_GLOBAL] == 0.0
    assert stream(0.48, chart, grey, grey) == 0  # the chart behind them was not forgotten


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_background_slope_matches_reference(seed: int, shape: tuple[int, int]) -> None:
    bg = (np.random.default_rng(seed).random(shape) * 255).astype(np.float32)
    out = np.full(shape, 77, np.uint8)
    K.background_slope(bg, out)
    npt.assert_array_equal(out, naive.background_slope(bg))


def test_background_slope_of_a_step_edge() -> None:
    bg = np.zeros((3, 6), np.float32)
    bg[:, 3:] = 101.0  # a vertical edge between columns 2 and 3
    bg[0, 0] = 255.0  # the steepest slope there is (one-sided, 0 to 255) still fits in a byte
    out = np.zeros(bg.shape, np.uint8)
    K.background_slope(bg, out)
    assert out.tolist() == [[255, 127, 50, 50, 0, 0], [127, 0, 50, 50, 0, 0], [0, 0, 50, 50, 0, 0]]


def test_motion_frame_refreshes_the_slope_every_few_frames() -> None:
    h, w = 6, 8
    rng = np.random.default_rng(3)
    luma = rng.integers(0, 256, (h, w), dtype=np.uint8)
    dummy = np.zeros((1, 1), np.uint8)
    params = _ctl_params(rng)
    ctl = np.zeros(K.N_CTL)
    ctl[K.C_DT], ctl[K.C_RELEARN_UNTIL] = 0.04, -1e300
    st = _state(h, w, 3)
    raw, mask = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    state = (*_step_state(st), raw, st["last"], np.zeros((h, w), np.uint8), *_samples(h, w, 3))
    scratch = (np.zeros(w + 2 * K.MAX_RADIUS, np.uint8), np.zeros((h * (w // 2 + 1), 3), np.int32),
               np.zeros(h * (w // 2 + 1), np.int32))  # fmt: skip
    boxes = np.zeros((16, K.BOX_FIELDS), np.int64)
    stats = np.zeros(K.N_STATS)
    ignore = np.zeros((h, w), np.uint8)
    for k in range(2 * K.SLOPE_EVERY + 1):
        before = st["slope"].copy()
        K.motion_frame(luma, dummy, dummy, False, 0.04 * k, 1, params, ctl, state, ignore, mask, scratch, boxes, stats)
        if k % K.SLOPE_EVERY == 0:  # the first frame and every SLOPE_EVERY-th after it
            npt.assert_array_equal(st["slope"], naive.background_slope(st["bg"]))
        else:
            npt.assert_array_equal(st["slope"], before)


def test_every_kernel_is_cached_nogil_with_the_one_fastmath_setting() -> None:
    import inspect
    import re
    from pathlib import Path

    from numba.core.registry import CPUDispatcher

    kernels = [obj for obj in vars(K).values() if isinstance(obj, CPUDispatcher)]
    assert len(kernels) >= 8
    for kernel in kernels:
        name = kernel.py_func.__name__
        opts = kernel.targetoptions
        assert opts["nogil"] is True, name
        assert opts["fastmath"] == K.FASTMATH, name
        assert type(getattr(kernel, "_cache", None)).__name__ == "FunctionCache", name  # cache=True
    source = Path(inspect.getfile(K)).read_text()
    assert set(re.findall(r"fastmath=(\w+)", source)) == {"FASTMATH"}
    assert source.count("FASTMATH = ") == 1


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("width", [48, 53])  # a multiple of 8 (rows read as words) and not
@pytest.mark.parametrize("radius", [1, 2, 4])
def test_majority_filter_speckle_between_blobs(seed: int, width: int, radius: int) -> None:
    """Scattered weak pixels keep every row non-empty but too light to pass; blobs between them
    make the window sums restart after skipped rows and slide over rows that pass."""
    rng = np.random.default_rng(seed)
    mask = (rng.random((60, width)) < 0.04).astype(np.uint8)
    for _ in range(3):
        y, x = int(rng.integers(0, 50)), int(rng.integers(0, width - 14))
        mask[y : y + int(rng.integers(3, 11)), x : x + int(rng.integers(4, 15))] = 2
    ignore = np.zeros_like(mask)
    out = np.full_like(mask, 7)
    n = K.majority_filter(mask, radius, ignore, out, np.zeros(width + 2 * K.MAX_RADIUS, np.uint8))
    ref = naive.majority_filter(mask, radius, ignore)
    npt.assert_allclose(out, ref, atol=0)
    assert n == int(ref.sum()) > 0


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("radius", [0, 1, 3])
def test_majority_filter_sparse_masks_with_empty_rows(seed: int, radius: int) -> None:
    rng = np.random.default_rng(seed)
    mask = np.zeros((40, 50), np.uint8)
    for _ in range(4):  # a few blobs, most rows empty
        y, x = int(rng.integers(0, 36)), int(rng.integers(0, 44))
        mask[y : y + int(rng.integers(1, 5)), x : x + int(rng.integers(1, 7))] = rng.choice([1, 2])
    ignore = np.zeros_like(mask)
    out = np.full_like(mask, 7)
    n = K.majority_filter(mask, radius, ignore, out, np.zeros(50 + 2 * K.MAX_RADIUS, np.uint8))
    ref = naive.majority_filter(mask, radius, ignore)
    npt.assert_allclose(out, ref, atol=0)
    assert n == int(ref.sum())


def test_motion_params_builder_covers_every_settings_entry_once() -> None:
    import dataclasses

    fields = [f.name for f in dataclasses.fields(K.MotionParams)]
    # distinct values per field, so that each lands at its own index
    values = {name: float(k + 2) for k, name in enumerate(fields)}
    for name in ("blur", "shade", "neighbours"):
        values[name] = True
    arr = K.MotionParams(**values).to_array()  # type: ignore[arg-type]
    assert arr.shape == (K.N_PARAMS,) and arr.dtype == np.float64
    written = {i for i in range(K.N_PARAMS) if arr[i] != 0.0}
    per_frame = set(K.PER_FRAME_PARAMS)
    every_p = {getattr(K, n) for n in dir(K) if n.startswith("P_") and isinstance(getattr(K, n), int)}
    assert every_p == set(range(K.N_PARAMS))  # the map's indices are 0 .. N_PARAMS - 1, none twice
    assert written | per_frame == every_p and not written & per_frame
    assert len(written) == len(fields)  # one index per field
    # an existing vector keeps its per-frame entries
    out = np.full(K.N_PARAMS, 7.0)
    K.MotionParams(**values).to_array(out)  # type: ignore[arg-type]
    assert all(out[i] == 7.0 for i in per_frame)
    with pytest.raises(ValueError, match="float64 of shape"):
        K.MotionParams(**values).to_array(np.zeros(3))  # type: ignore[arg-type]


def test_reset_control_starts_a_stream() -> None:
    ctl = np.full(K.N_CTL, 5.0)
    K.reset_control(ctl, 0.04, -1e300)
    assert ctl[K.C_DT] == 0.04 and ctl[K.C_RELEARN_UNTIL] == -1e300 and ctl[K.C_CHROMA_LEVEL] == -1.0
    assert ctl[K.C_FRAMES] == 0.0 and ctl[K.C_T_LAST] == 0.0
    with pytest.raises(ValueError, match="control vector"):
        K.reset_control(np.zeros(K.N_CTL, np.float32), 0.04, -1e300)
