"""Camera-tamper detection: covered, defocused, moved, frozen; each debounced in seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_config.vision import TamperSettings
from vision import _kernels as K
from vision._checks import check_frame_shape, check_plane
from vision._events import VisionEvent

__all__ = ["TAMPER_KINDS", "TamperDetector"]

TAMPER_KINDS = ("covered", "defocused", "moved", "frozen")
_BASE_ALPHA = 0.05  # learning rate of the frame-level baselines (edge and detail energy)


@dataclass(slots=True)
class _Condition:
    holding_since: float = math.nan
    clear_since: float = math.nan
    active: bool = False
    score: float = 0.0


class TamperDetector:
    """Watch one stream for tamper; feed it every frame (it checks one each ``interval_s``).

    It learns a reference view for ``learn_s`` seconds, then keeps learning it slowly while the
    view is normal. A condition must hold for ``raise_after_s`` (frozen: ``frozen_after_s``) to be
    raised and be gone for ``resolve_after_s`` to be resolved. Checks, in precedence order:

    - covered: the frame became nearly uniform (luma spread < ``covered_std`` and under half its
      learned spread, so a scene that darkens slowly at dusk is not "covered") or its edge energy
      fell below ``covered_edge_ratio`` of the learned baseline (blacked out, sprayed, hand on lens);
    - defocused: fine-detail (Laplacian) energy fell below ``defocus_ratio`` of the baseline;
    - moved: the edge structure no longer correlates with the reference view (turned, shifted)
      even with both edge maps blurred over ``moved_tolerance`` of the width, so a shaking camera
      is not "moved" (with the default, a view turned by 5% of the width is, by 3% is not);
    - frozen: every checked frame has been bit-identical (at analysis size) for ``frozen_after_s``.

    A global brightness change (lights, IR) keeps the structure and raises nothing.
    :attr:`analysis_suppressed` tells the caller to keep motion events quiet (see
    :class:`vision.MotionEvents`).
    """

    def __init__(self, settings: TamperSettings, frame_shape: tuple[int, int]) -> None:
        self._shape = check_frame_shape(frame_shape)
        height, width = self._shape
        self._f = max(1, width // settings.analysis_width)
        h, w = max(1, height // self._f), max(1, width // self._f)
        self._small = np.zeros((h, w), dtype=np.float32)
        self._prev = np.full((h, w), -1.0, dtype=np.float32)
        self._ref = np.zeros((h, w), dtype=np.float32)
        self._stats = np.zeros(K.N_TAMPER_STATS, dtype=np.float64)
        self._grad_scratch = np.zeros((3, max(0, h - 2), max(0, w - 2)), dtype=np.float32)
        self._blur_radius = round(settings.moved_tolerance * w)
        self._blurred_corr = math.nan
        self._settings = settings
        self._conds = {k: _Condition() for k in TAMPER_KINDS}
        self._t0: float | None = None
        self._n = 0
        self._last_check = -math.inf
        self.checks = 0  # frames analysed (the others fell within interval_s of the last one)
        self._base_edge = 0.0
        self._base_std = 0.0
        self._base_detail = 0.0
        self._learning_now = True

    @property
    def active_kinds(self) -> tuple[str, ...]:
        """Kinds currently raised."""
        return tuple(k for k, c in self._conds.items() if c.active)

    @property
    def analysis_suppressed(self) -> bool:
        """True while any tamper condition is raised or building up: keep motion quiet."""
        return any(c.active or not math.isnan(c.holding_since) for c in self._conds.values())

    @property
    def learning(self) -> bool:
        """True until the reference view is learned."""
        return self._t0 is None or self._n < 2 or self._learning_now

    @property
    def last_stats(self) -> dict[str, float]:
        """The last frame's statistics and baselines (for the doctor and the tests)."""
        st = self._stats
        return {
            "mean": float(st[K.T_MEAN]),
            "std": float(st[K.T_STD]),
            "edge": float(st[K.T_EDGE]),
            "detail": float(st[K.T_DETAIL]),
            "corr": float(st[K.T_CORR]),
            "blurred_corr": self._blurred_corr,  # edge maps blurred by the shake tolerance; NaN unless corr was low
            "base_edge": self._base_edge,
            "base_std": self._base_std,
            "base_detail": self._base_detail,
        }

    def reference_view(self) -> np.ndarray:
        """The learned reference view, uint8 luma at the tamper analysis size: what the camera saw
        before a condition was raised (it stops learning while one holds)."""
        view: np.ndarray = np.clip(self._ref + np.float32(0.5), 0, 255).astype(np.uint8)
        return view

    def reset_reference(self) -> None:
        """Forget the learned view (after the technician re-aims the camera on purpose)."""
        self._t0 = None
        self._n = 0
        self._conds = {k: _Condition() for k in TAMPER_KINDS}

    def process(self, luma: np.ndarray, t: float) -> list[VisionEvent]:
        """Analyse one frame; returns tamper events raised or resolved on it."""
        check_plane("luma", luma, self._shape)
        s = self._settings
        if not s.enabled:
            return []
        # a timestamp going back is a new stream: check it at once. 1 ms of slack: timestamps
        # like i / 25 land a rounding error short of the interval's multiples
        if 0.0 <= t - self._last_check < s.interval_s - 1e-3:
            return []
        self._last_check = t
        self.checks += 1
        K.downscale_area(luma, self._f, self._small)
        identical = bool(np.array_equal(self._small, self._prev))
        self._prev[:] = self._small
        if self._t0 is None:
            self._t0 = t
            self._n = 0
        self._learning_now = t - self._t0 < s.learn_s
        if self._learning_now or self._n < 2:
            self._n += 1
            a = 1.0 / self._n
            self._ref += np.float32(a) * (self._small - self._ref)
            K.tamper_stats(self._small, self._ref, self._stats)
            self._base_edge += a * (self._stats[K.T_EDGE] - self._base_edge)
            self._base_std += a * (self._stats[K.T_STD] - self._base_std)
            self._base_detail += a * (self._stats[K.T_DETAIL] - self._base_detail)
            return []
        K.tamper_stats(self._small, self._ref, self._stats)
        self._blurred_corr = math.nan
        st = self._stats
        holding = self._classify(st, identical=identical)
        events = self._debounce(holding, t)
        if not any(holding.values()) and not self.active_kinds:
            # the view is normal: follow slow changes of light and season
            self._ref += np.float32(s.reference_alpha) * (self._small - self._ref)
            self._base_edge += _BASE_ALPHA * (st[K.T_EDGE] - self._base_edge)
            self._base_std += _BASE_ALPHA * (st[K.T_STD] - self._base_std)
            self._base_detail += _BASE_ALPHA * (st[K.T_DETAIL] - self._base_detail)
        return events

    def _classify(self, st: np.ndarray, *, identical: bool) -> dict[str, float]:
        """Score of every condition holding on this frame (0 = not holding)."""
        s = self._settings
        edge_ratio = st[K.T_EDGE] / self._base_edge if self._base_edge > 0 else 1.0
        detail_ratio = st[K.T_DETAIL] / self._base_detail if self._base_detail > 0 else 1.0
        out = dict.fromkeys(TAMPER_KINDS, 0.0)
        flat = st[K.T_STD] < s.covered_std and st[K.T_STD] < 0.5 * self._base_std
        if flat or edge_ratio < s.covered_edge_ratio:
            out["covered"] = max(0.01, min(1.0, 1.0 - edge_ratio))
        elif detail_ratio < s.defocus_ratio:
            out["defocused"] = max(0.01, min(1.0, 1.0 - detail_ratio))
        elif st[K.T_CORR] < s.moved_correlation:
            # a shaking camera's sharp edges miss the learned ones (which are smeared by the
            # shake too); compared at the shake's scale they match, and a turned view does not
            corr = K.blurred_edge_correlation(self._small, self._ref, self._blur_radius, self._grad_scratch)
            self._blurred_corr = corr
            if corr < s.moved_correlation:
                out["moved"] = max(0.01, min(1.0, 1.0 - corr))
        if identical:
            out["frozen"] = 1.0
        return out

    def _debounce(self, holding: dict[str, float], t: float) -> list[VisionEvent]:
        s = self._settings
        events: list[VisionEvent] = []
        for kind, score in holding.items():
            c = self._conds[kind]
            hold_s = s.frozen_after_s if kind == "frozen" else s.raise_after_s
            if score > 0:
                c.clear_since = math.nan
                if math.isnan(c.holding_since):
                    c.holding_since = t
                c.score = max(c.score, score) if c.active else score
                if not c.active and t - c.holding_since >= hold_s:
                    c.active = True
                    events.append(VisionEvent(kind, None, True, t, c.score))
            else:
                c.holding_since = math.nan
                if c.active:
                    if math.isnan(c.clear_since):
                        c.clear_since = t
                    if t - c.clear_since >= s.resolve_after_s:
                        c.active = False
                        c.clear_since = math.nan
                        events.append(VisionEvent(kind, None, False, t, c.score))
                        c.score = 0.0
        return events
