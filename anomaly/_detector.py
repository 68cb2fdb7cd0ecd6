"""Typed, checked wrappers around the kernels: one ``PointDetector`` per (device, point)."""

from __future__ import annotations

import hashlib
import math
import struct

import numpy as np
import numpy.typing as npt

from anomaly import _kernels
from edge_config.anomaly import AnomalySettings, EnsembleSettings

__all__ = ["PointDetector", "make_detector"]

F64 = npt.NDArray[np.float64]

_MAGIC = b"TEGA"
# 2: the ensemble's daily state gained each bin's last alarm time and recurrence count.
# 3: the ensemble's state gained the last reading's time, the nominal sampling interval and how
#    long the value has not changed.
# 4: the ensemble holds one member per fast span (each with its own state but one pattern table).
# 5: the pattern table keeps plain counts (no forgetting, no growth factor in the state).
# 6: the pattern bins are the Freedman-Diaconis width for the level's readings (were 0.25 spreads),
#    so a table saved before counts other patterns under the same keys; same layout.
_VERSION = 6
_HEADER = struct.Struct("<4sHB32sIII")
_KINDS = {"windowed_gaussian": 1, "ensemble": 2}


def _fingerprint(settings: AnomalySettings) -> bytes:
    """Hash of the settings that shape the state arrays.

    Only these must match for a saved state to be restored: rates, levels and suppression may be
    retuned in the config without losing what the detector has learned.
    """
    if settings.detector == "ensemble":
        cfg = settings.ensemble
        text = f"ensemble:context_bits={cfg.context_bits}:day_bins={cfg.day_bins}:members={len(cfg.fast_spans)}"
    else:
        text = f"windowed_gaussian:window={settings.windowed_gaussian.window}"
    return hashlib.sha256(text.encode()).digest()


def _ensemble_params(cfg: EnsembleSettings) -> F64:
    """One row of kernel parameters per member (per fast span)."""
    params = np.zeros((len(cfg.fast_spans), _kernels.ENS_NPARAM))
    for row, fast_span in zip(params, cfg.fast_spans, strict=True):
        row[:] = (
            cfg.level_days * _kernels.DAY_SECONDS,
            1.0 / fast_span,
            cfg.clip,
            1.0 / cfg.short_span,
            1.0 / cfg.long_span,
            cfg.quiet_minutes * 60.0,
            cfg.alarm_z,
            cfg.warmup,
            cfg.z_scale,
            1.0 / cfg.day_span,
            cfg.day_span,
            cfg.recur_decay,
            cfg.recur_days,
            math.ceil(cfg.short_span),
        )
    return params


def _check_values(name: str, arr: object) -> F64:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(arr).__name__}; use np.asarray(...)")
    if arr.dtype != np.float64:
        raise TypeError(f"{name} has dtype {arr.dtype}; the detectors take float64: use {name}.astype(np.float64)")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}; use {name}.ravel()")
    return np.ascontiguousarray(arr)


class PointDetector:
    """Streaming anomaly detector of one sensor point.

    ``update`` scores one reading in O(1) time; ``score_batch`` scores an array with the same
    kernel (results identical to calling ``update`` value by value). Memory is fixed at creation.
    Scores are in [0, 1]. A missing reading (NaN, +-inf, |x| > 1e150) scores 0.0 and leaves the
    state untouched. Times are seconds since the epoch: the ensemble's daily channel bins them by
    time of day (a non-finite time only skips that channel); the windowed Gaussian ignores them.
    """

    __slots__ = (
        "_aux",
        "_day",
        "_fingerprint",
        "_kind",
        "_one_in",
        "_one_out",
        "_one_t",
        "_params",
        "_state",
    )

    def __init__(self, settings: AnomalySettings) -> None:
        self._kind = settings.detector
        self._fingerprint = _fingerprint(settings)
        # The ensemble's state, day and params hold one row per member; the other arrays are 1-D.
        self._params: F64
        self._state: F64
        self._aux: F64
        self._day: F64
        if settings.detector == "ensemble":
            cfg = settings.ensemble
            members = len(cfg.fast_spans)
            self._params = _ensemble_params(cfg)
            self._state = np.zeros((members, _kernels.ENS_NSTATE))
            self._state[:, _kernels.ENS_TIME_INDEX] = np.nan  # no timed reading yet
            self._aux = np.zeros(1 << cfg.context_bits)  # the members share one pattern table
            self._day = np.zeros((members, _kernels.ENS_DAY_FIELDS * cfg.day_bins))
            alarms = _kernels.ENS_DAY_ALARM_FIELD * cfg.day_bins
            self._day[:, alarms : alarms + cfg.day_bins] = -np.inf  # no alarm seen in any bin yet
        else:
            self._params = np.zeros(0)
            self._state = np.zeros(_kernels.GAUSS_NSTATE)
            self._aux = np.zeros(settings.windowed_gaussian.window)
            self._day = np.zeros(0)
        self._one_in = np.zeros(1)
        self._one_t = np.zeros(1)
        self._one_out = np.zeros(1)

    @property
    def kind(self) -> str:
        """The detector's name: 'ensemble' or 'windowed_gaussian'."""
        return self._kind

    def _run(self, values: F64, times: F64, out: F64) -> None:
        if self._kind == "ensemble":
            _kernels.ensemble_max_run(self._state, self._aux, self._day, self._params, values, times, out)
        else:
            _kernels.gauss_run(self._state, self._aux, values, out)

    def update(self, value: float, t: float) -> float:
        """Score one reading taken at time ``t`` (seconds); returns an anomaly score in [0, 1]."""
        self._one_in[0] = value
        self._one_t[0] = t
        self._run(self._one_in, self._one_t, self._one_out)
        return float(self._one_out[0])

    def score_batch(self, values: F64, times: F64) -> F64:
        """Score readings in order (back-fill, benchmark); same results as repeated ``update``."""
        values = _check_values("values", values)
        times = _check_values("times", times)
        if times.shape != values.shape:
            raise ValueError(f"times has shape {times.shape} but values has {values.shape}; pass one time per value")
        out = np.empty_like(values)
        self._run(values, times, out)
        return out

    def state(self) -> bytes:
        """Serialise the whole state (to save in the state directory across restarts)."""
        header = _HEADER.pack(
            _MAGIC,
            _VERSION,
            _KINDS[self._kind],
            self._fingerprint,
            self._state.size,
            self._aux.size,
            self._day.size,
        )
        body = np.concatenate([self._state.ravel(), self._aux.ravel(), self._day.ravel()]).astype("<f8")
        return header + body.tobytes()

    @classmethod
    def restore(cls, settings: AnomalySettings, blob: bytes) -> PointDetector:
        """Rebuild a detector saved by ``state()``; the settings must be the ones it was made with.

        Settings that do not shape the state (rates, alarm levels, suppression) may differ from the
        ones the state was saved with; the new ones apply from the next reading. Raises
        ValueError when the blob is not a detector state, was saved in another state format, or
        was made by another detector kind or with another table size, day binning or window
        (then start afresh with ``make_detector(settings)``: it relearns during its warm-up).
        """
        det = cls(settings)
        if len(blob) < _HEADER.size:
            raise ValueError("not a detector state: too short")
        magic, version, kind, fingerprint, n_state, n_aux, n_day = _HEADER.unpack_from(blob)
        if magic != _MAGIC:
            raise ValueError(f"not a detector state (magic {magic!r})")
        if version != _VERSION:
            raise ValueError(
                f"detector state was saved by state format {version}, this is format {_VERSION}; "
                "discard it and start afresh with make_detector(settings)"
            )
        if kind != _KINDS[det._kind] or fingerprint != det._fingerprint:
            raise ValueError(
                "detector state was saved with another detector or state layout (detector, context_bits, "
                "day_bins, the number of fast means (short_span) or window changed); discard it and start "
                "afresh with make_detector(settings)"
            )
        expected = _HEADER.size + 8 * (n_state + n_aux + n_day)
        sizes = (det._state.size, det._aux.size, det._day.size)
        if (n_state, n_aux, n_day) != sizes or len(blob) != expected:
            raise ValueError(f"detector state is truncated or corrupt ({len(blob)} bytes)")
        body = np.frombuffer(blob, dtype="<f8", offset=_HEADER.size)
        det._state.reshape(-1)[:] = body[:n_state]
        det._aux.reshape(-1)[:] = body[n_state : n_state + n_aux]
        det._day.reshape(-1)[:] = body[n_state + n_aux :]
        return det


def make_detector(settings: AnomalySettings | None = None) -> PointDetector:
    """Make a fresh detector for one point (default settings: the benchmarked ensemble)."""
    return PointDetector(settings if settings is not None else AnomalySettings())
