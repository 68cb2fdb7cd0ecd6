"""Numba kernels of the streaming anomaly detectors: pure functions over arrays, nothing else.

Every kernel takes its whole state as float64 arrays, updates it in place and writes one score per
input value into a preallocated ``out`` array, so a live detector (one value at a time) and a
back-fill (a whole array) run exactly the same code and give identical results.

Missing-value policy (both detectors): a value that is NaN, +-inf or larger in magnitude than
``MAX_ABS`` is a missing reading. It leaves the state untouched and scores 0.0.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "ENS_DAY_ALARM_FIELD",
    "ENS_DAY_FIELDS",
    "ENS_NCH",
    "ENS_NPARAM",
    "ENS_NSTATE",
    "ENS_TIME_INDEX",
    "FASTMATH",
    "GAUSS_NSTATE",
    "MAX_ABS",
    "ensemble_max_run",
    "ensemble_run",
    "gauss_run",
]

# The one place fastmath flags are set. Deliberately minimal: no "nnan"/"ninf" (the kernels test
# for NaN), no "reassoc"/"contract"/"arcp"/"afn": the kernels are sequential recurrences that gain
# nothing from vectorisation, and plain IEEE arithmetic keeps them reproducible against the NumPy
# references even on large offsets (1e12 + noise), where one FMA shifts a level by an ulp.
FASTMATH: set[str] = {"nsz"}

MAX_ABS = 1e150

F64 = npt.NDArray[np.float64]

# ---------------------------------------------------------------------------------------------
# Windowed Gaussian baseline.
# state: [count, next ring position, shift, sum(y), sum(y*y)] with y = x - shift; ring: the window.
GAUSS_NSTATE = 5


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _gauss_resum(state: F64, ring: F64) -> None:
    """Recompute the running sums from the window (bounds rounding drift; amortised O(1))."""
    count = int(state[0])
    s = 0.0
    ss = 0.0
    for j in range(count):
        s += ring[j]
        ss += ring[j] * ring[j]
    state[3] = s
    state[4] = ss


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def gauss_run(state: F64, ring: F64, values: F64, out: F64) -> None:
    """Windowed Gaussian tail score of each value against the previous ``len(ring)`` values.

    ``out[i] = erf(|z| / sqrt(2))`` where z is the value's z-score against the mean and population
    standard deviation of the window *before* it is added; 0.0 until two values have been seen.
    A window with zero spread scores 1.0 for any different value and 0.0 for an equal one.
    """
    width = ring.shape[0]
    for i in range(values.shape[0]):
        x = values[i]
        out[i] = 0.0
        if not abs(x) <= MAX_ABS:
            continue
        count = int(state[0])
        if count == 0:
            state[2] = x
        y = x - state[2]
        if count >= 2:
            mean = state[3] / count
            var = state[4] / count - mean * mean
            sd = math.sqrt(var) if var > 0.0 else 0.0
            if sd > 0.0 and math.isfinite(sd):
                out[i] = math.erf(abs(y - mean) / sd / math.sqrt(2.0))
            elif y != mean:
                out[i] = 1.0
        pos = int(state[1])
        if count == width:
            old = ring[pos]
            state[3] -= old
            state[4] -= old * old
        else:
            state[0] = count + 1
        ring[pos] = y
        state[3] += y
        state[4] += y * y
        pos += 1
        if pos == width:
            pos = 0
            _gauss_resum(state, ring)
        state[1] = pos


# ---------------------------------------------------------------------------------------------
# Multi-channel robust ensemble with anomaly-likelihood post-processing.
#
# Channels (raw surprise of the current value, each capped at Z_CAP):
#   0 level:    |x - m| / s          (m, s: slow, clipped EW location and mean absolute deviation,
#                                    remembering ``level_days`` by the clock: see _level_scale)
#   1 change:   |d - md| / sd        (d = x - previous x; md, sd as above, over the differences)
#   2 shift:    |ms - m| / s         (ms: fast EW mean: a level shift builds up over a few values)
#   3 context:  1 / (1 + c)          (c: how often the current 3-value quantised pattern was seen
#                                    before; bins of the Freedman-Diaconis width in spreads, out to
#                                    ``clip`` spreads either side of the level)
#   4 daily:    |x - mb| / (sb + a s)  (mb, sb: clipped EW location and spread of the values
#                                    seen in the same time-of-day bin, a = 1 / ``day_span`` their
#                                    rate; 0 until the bin has ``day_span`` values, or when the
#                                    time is not finite)
# Each channel's raw score is smoothed (fast EW, "short term") and compared with its own long-term
# EW mean and variance: the likelihood z of that channel. The detector's z is the largest one, and
# after z reaches ``alarm_z`` the output is held at 0 for the quiet time (``quiet_minutes`` by the
# clock, never fewer than ``short_span`` readings: see _quiet_intervals), and for as long after
# that as z stays at or above ``alarm_z`` (one event, one alarm: the event lasts while the
# reading is still at the alarm level, so no second level needs setting).
# A value repeated for longer than the quiet time scores 0 (a frozen sensor).
# Output score: z / (z + z_scale) for a reading that raises an alarm, 0 for every other one (so
# a threshold under the alarm level's score cannot turn one event into a run of detections); an
# alarm that recurs at the same time of day (see _recurrence) has its score multiplied by
# ``recur_decay`` once per consecutive recurrence.
ENS_NCH = 5
# state layout
_N = 0  # values seen
_M = 1  # level location
_S = 2  # level spread
_MS = 3  # fast mean
_MD = 4  # change location
_SD = 5  # change spread
_PREV = 6  # previous value
_Q1 = 7  # previous quantised value
_Q2 = 8  # the one before
_SUP = 9  # values still suppressed
_SH = 10  # ENS_NCH short-term means of channel scores
_LM = _SH + ENS_NCH  # ENS_NCH long-term means
_LV = _LM + ENS_NCH  # ENS_NCH long-term variances
_T = _LV + ENS_NCH  # time of the latest reading with a finite time; NaN until one is seen
_NOM = _T + 1  # nominal sampling interval, seconds (0 until two timed readings are seen)
_RUN = _NOM + 1  # nominal intervals the value has not changed for
ENS_NSTATE = _RUN + 1
ENS_TIME_INDEX = _T
# params layout
_P_LEVEL_SECONDS = 0
_P_A_FAST = 1
_P_CLIP = 2
_P_A_SHORT = 3
_P_A_LONG = 4
_P_QUIET_SECONDS = 5
_P_ALARM = 6
_P_WARMUP = 7
_P_ZSCALE = 8
_P_A_DAY = 9
_P_DAY_SPAN = 10
_P_RECUR_DECAY = 11
_P_RECUR_DAYS = 12
_P_QUIET_MIN = 13
ENS_NPARAM = 14
# The daily state holds, per time-of-day bin: location, spread, count, time of the last alarm in
# the bin (-inf: none yet) and that alarm's recurrence count (5 * bins values).
ENS_DAY_FIELDS = 5
ENS_DAY_ALARM_FIELD = 3

Z_CAP = 50.0
# The context channel's pattern key packs three bin indices offset by 64 in base 131: no index may
# leave [-64, 64] whatever clip / bin width a configuration asks for.
CONTEXT_LEVEL_CAP = 64.0
# The Freedman-Diaconis bin width, 2 IQR n^(-1/3), in the detector's spreads: a spread is a mean
# absolute deviation, sqrt(2/pi) sigma for normal data, and the IQR is 1.349 sigma.
FD_SPREADS = 2.0 * 1.349 * math.sqrt(math.pi / 2.0)
DAY_SECONDS = 86400.0
# An alarm repeats an earlier one only if that one is at least half a day older: a long event
# must never count as a recurrence of itself.
RECUR_MIN_SECONDS = 0.5 * DAY_SECONDS
# Time, not count, where time is what matters. The nominal sampling interval is a running median of
# the intervals between readings: an interval more than this factor (2**(1/8)) longer or shorter
# moves it one factor up or down (a doubling of the reporting rate is followed within 8 readings,
# one gap moves it by 9%); an interval within that factor is a regular one (k = 1) and leaves it
# alone. A reading that comes k nominal intervals after the previous one advances the suppression by k
# (not by 1), and its change from the previous value is divided by sqrt(k)
# when k > 1 (a random walk's change grows as the square root of the elapsed time: a gap is not a
# jump). The daily channel and the recurrence rule work on the clock already, and the slow level's
# rate per reading comes from the nominal interval (_level_scale). The averages still take one
# step per reading: weighting them by k too was tried and lost on NAB's irregular traffic series
# (bench/ANOMALY_RESULTS.md). Nothing here is fitted: on a regular series k is exactly 1.
NOMINAL_STEP = 2.0**0.125


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _ew_rate(rate: float, count: float) -> float:
    """EW rate with a running-mean start, so early estimates are not biased to the first value."""
    return rate if count * rate > 1.0 else 1.0 / (count + 1.0)


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _interval_weight(state: F64, t: float) -> float:
    """k: the time since the previous timed reading in nominal intervals, and update of both.

    1.0 when the time is not finite, for the first two timed readings, and when time did not
    move forward (a repeated or out-of-order stamp is judged as one regular step).
    """
    if not math.isfinite(t):
        return 1.0
    last = state[_T]
    k = 1.0
    if math.isfinite(last):
        dt = t - last
        if dt > 0.0:
            nom = state[_NOM]
            if nom <= 0.0:
                nom = dt
            else:
                ratio = dt / nom
                # Within one step of the nominal interval: a regular reading (k exactly 1) that
                # leaves the nominal alone, so jitter cannot make it drift or oscillate.
                if ratio > NOMINAL_STEP:
                    k = ratio
                    nom *= NOMINAL_STEP
                elif ratio * NOMINAL_STEP < 1.0:
                    k = ratio
                    nom /= NOMINAL_STEP
            state[_NOM] = nom
        state[_T] = max(last, t)
    else:
        state[_T] = t
    return k


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _level_scale(level_seconds: float, nominal: float, count: float) -> tuple[float, float]:
    """Rate of the slow estimates and width of the pattern bins (in spreads), from the clock.

    The slow estimates remember ``level_seconds``: their rate per reading is the nominal interval
    over that time (at most 1), so a series read every 5 minutes and one read hourly forget at the
    same pace by the clock. The pattern bins are the Freedman-Diaconis width for n = the readings
    in that memory. Until the nominal interval is known (the first timed reading, or a series
    without finite times) the rate is 0, so _ew_rate's running mean applies, and n is the readings
    that running mean holds.
    """
    if nominal > 0.0:
        rate = min(nominal / level_seconds, 1.0)
        readings = level_seconds / nominal
    else:
        rate = 0.0
        readings = count + 1.0
    width: float = FD_SPREADS * readings ** (-1.0 / 3.0)
    return rate, width


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _quiet_intervals(quiet_seconds: float, quiet_min: float, nominal: float) -> float:
    """The quiet time after an alarm, in nominal intervals: ``quiet_seconds`` by the clock, but
    never fewer than ``quiet_min`` readings (the short-term average's span: sooner, the average
    still holds the alarming reading). Before the nominal interval is known, ``quiet_min``.
    """
    if nominal > 0.0:
        return max(quiet_seconds / nominal, quiet_min)
    return quiet_min


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _daily(day: F64, params: F64, x: float, t: float, spread: float, eps: float) -> float:
    """Raw score of the daily channel for value x at time t, and update of its bin."""
    bins = day.shape[0] // ENS_DAY_FIELDS
    if bins == 0 or not math.isfinite(t):
        return 0.0
    b = math.floor((t % DAY_SECONDS) / DAY_SECONDS * bins) % bins
    loc = day[b]
    spr = day[bins + b]
    cnt = day[2 * bins + b]
    # Once scored, a reading moves its bin by at most alarm_z of the bin's spreads: beyond the alarm
    # level it is an outlier for its hour, not that hour's normal. One level says what an outlier
    # is, so the bin has no clip of its own to set.
    clip = params[_P_ALARM]
    a_day = params[_P_A_DAY]
    raw = 0.0
    # A bin scores once its EW has left its running-mean start (after day_span readings, see
    # _ew_rate): before that its location is a plain mean of a few readings, not yet the estimate.
    if cnt >= params[_P_DAY_SPAN]:
        # The bin's spread is an EW at rate a_day: a reading at the series' typical departure (the
        # level's spread) moves it by a_day * spread, so a bin spread finer than that is not resolved
        # and the unit never falls under it. No floor to set: it follows the bin's own rate.
        raw = min(abs(x - loc) / (spr + a_day * spread + eps), Z_CAP)
        xc = min(max(x, loc - clip * spr), loc + clip * spr)
        ec = min(abs(x - loc), clip * spr)
    else:
        xc = x
        ec = abs(x - loc)
    if cnt == 0.0:
        day[b] = x
    else:
        a = _ew_rate(a_day, cnt)
        day[b] = loc + a * (xc - loc)
        day[bins + b] = spr + a * (ec - spr)
    day[2 * bins + b] = cnt + 1.0
    return raw


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def _recurrence(day: F64, params: F64, t: float) -> float:
    """Score factor of an alarm raised at time t, and record of that alarm in its time-of-day bin.

    A recurrence is an alarm in the same or an adjacent bin between half a day and ``recur_days``
    days earlier: a daily pattern (a nightly job, a rush hour) the channels have not learned. Its
    count is one more than the count of the alarm it repeats, and the factor is
    ``recur_decay ** count``: a one-off alarm keeps its full score (count 0), a pattern fades.
    """
    bins = day.shape[0] // ENS_DAY_FIELDS
    if bins == 0 or not math.isfinite(t):
        return 1.0
    b = math.floor((t % DAY_SECONDS) / DAY_SECONDS * bins) % bins
    last = ENS_DAY_ALARM_FIELD * bins
    horizon = params[_P_RECUR_DAYS] * DAY_SECONDS
    count = 0.0
    for db in range(-1, 2):
        nb = (b + db) % bins
        age = t - day[last + nb]
        if RECUR_MIN_SECONDS <= age <= horizon:
            count = max(count, day[last + bins + nb] + 1.0)
    day[last + b] = t
    day[last + bins + b] = count
    factor: float = params[_P_RECUR_DECAY] ** count
    return factor


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ensemble_run(
    state: F64, table: F64, day: F64, params: F64, values: F64, times: F64, out: F64, context: F64
) -> None:
    """Score each value (taken at ``times``, in seconds) with the ensemble detector.

    ``context`` (one slot per value) carries the context channel's raw score: a member with a
    pattern table computes it and writes it there; a member given an empty table reads it (the
    channel depends only on the level estimates, which members share, so it is the same for all).
    """
    level_seconds = params[_P_LEVEL_SECONDS]
    a_fast = params[_P_A_FAST]
    clip = params[_P_CLIP]
    a_short = params[_P_A_SHORT]
    a_long = params[_P_A_LONG]
    quiet_seconds = params[_P_QUIET_SECONDS]
    quiet_min = params[_P_QUIET_MIN]
    suppress = quiet_min
    alarm = params[_P_ALARM]
    warmup = params[_P_WARMUP]
    zscale = params[_P_ZSCALE]
    tsize = table.shape[0]
    nominal = 0.0  # the nominal interval the rate and bin width below were computed for
    a_level = 0.0
    quantum = 1.0
    levels = 0.0
    raw = np.empty(ENS_NCH)
    for i in range(values.shape[0]):
        x = values[i]
        out[i] = 0.0
        if not abs(x) <= MAX_ABS:
            continue
        count = state[_N]
        if count == 0.0:
            state[_M] = x
            state[_MS] = x
            state[_PREV] = x
            state[_S] = 0.0
            state[_SD] = 0.0
        k = _interval_weight(state, times[i])
        # The pattern bins are measured in spreads around the running level, so a pattern's meaning
        # does not age with the readings and a pattern once seen stays known (as CAD OSE's contexts
        # do): no forgetting rate to set. Their width follows the nominal interval, which moves
        # rarely (a change of reporting rate), and only then do the bins move under the table. The
        # bins reach out to the clip: beyond it a value is an outlier for the level too, and shares
        # the end bin.
        if state[_NOM] != nominal or nominal <= 0.0:
            nominal = state[_NOM]
            a_level, quantum = _level_scale(level_seconds, nominal, count)
            suppress = _quiet_intervals(quiet_seconds, quiet_min, nominal)
            levels = min(clip / quantum, CONTEXT_LEVEL_CAP)
        m = state[_M]
        s = state[_S]
        d = x - state[_PREV]
        if k > 1.0:
            d /= math.sqrt(k)
        eps = 1e-12 + 1e-9 * abs(m)
        raw[0] = min(abs(x - m) / (s + eps), Z_CAP)
        raw[1] = min(abs(d - state[_MD]) / (state[_SD] + eps), Z_CAP)
        raw[2] = min(abs(state[_MS] - m) / (s + eps), Z_CAP)
        if tsize > 0:
            # context channel: how often (q, q1, q2) was seen before
            qf = math.floor((x - m) / (quantum * s + eps))
            q = int(min(max(qf, -levels), levels))
            key = ((q + 64) * 131 + (int(state[_Q1]) + 64)) * 131 + (int(state[_Q2]) + 64)
            slot = (key * 2654435761) % tsize
            raw[3] = 1.0 / (1.0 + table[slot])
            table[slot] += 1.0
            state[_Q2] = state[_Q1]
            state[_Q1] = q
            context[i] = raw[3]
        else:
            raw[3] = context[i]
        raw[4] = _daily(day, params, x, times[i], s, eps)
        # robust updates: after warm-up a value moves the estimates at most clip spreads
        a = _ew_rate(a_level, count)
        e = abs(x - m)
        ed = abs(d - state[_MD])
        if count >= warmup:
            xc = min(max(x, m - clip * s), m + clip * s)
            ec = min(e, clip * s)
            dc = min(max(d, state[_MD] - clip * state[_SD]), state[_MD] + clip * state[_SD])
            edc = min(ed, clip * state[_SD])
        else:
            xc = x
            ec = e
            dc = d
            edc = ed
        state[_M] = m + a * (xc - m)
        state[_S] = s + a * (ec - s)
        state[_MS] += a_fast * (x - state[_MS])
        state[_MD] += a * (dc - state[_MD])
        state[_SD] += a * (edc - state[_SD])
        state[_PREV] = x
        # likelihood of each channel: short-term mean against the long-term distribution
        al = _ew_rate(a_long, count)
        z = 0.0
        for ch in range(ENS_NCH):
            r = raw[ch]
            state[_SH + ch] += a_short * (r - state[_SH + ch])
            if count >= warmup:
                zc = (state[_SH + ch] - state[_LM + ch]) / (math.sqrt(state[_LV + ch]) + 1e-3)
                z = max(z, zc)
            old = state[_LM + ch]
            state[_LM + ch] = old + al * (r - old)
            state[_LV + ch] += al * ((r - old) * (r - state[_LM + ch]) - state[_LV + ch])
        state[_N] = count + 1.0
        score = z / (z + zscale)
        quiet = False
        if state[_SUP] > 0.0:
            # Quiet while the reading is within the quiet time of the alarm; one that comes after
            # that time (a gap) is judged afresh.
            left = state[_SUP] - k
            quiet = left >= 0.0
            state[_SUP] = max(left, 0.0)
            if quiet and left == 0.0 and z >= alarm:
                state[_SUP] = 1.0  # still in the same event: stay quiet until z falls
        # A value frozen for longer than the quiet time after an alarm is the `stuck` rule's
        # business: it scores 0 and raises nothing (its first readings still can, so a level
        # that steps and then holds is judged). The reading that moves again is judged as usual.
        if d == 0.0:
            state[_RUN] += k
        else:
            state[_RUN] = 0.0
        if quiet or state[_RUN] > suppress:
            score = 0.0
        elif z >= alarm:
            state[_SUP] = suppress
            score *= _recurrence(day, params, times[i])
        else:
            score = 0.0
        out[i] = score


@njit(cache=True, nogil=True, fastmath=FASTMATH)
def ensemble_max_run(states: F64, table: F64, days: F64, params: F64, values: F64, times: F64, out: F64) -> None:
    """Several ensembles over the same values, one per row of the 2-D arrays; out: the largest score.

    The rows differ only in their parameters (the fast span): each member keeps its own state,
    suppression and recurrence memory, exactly as if it ran alone, and a reading's score is the
    largest of the members' scores. The context channel does not depend on the fast span, so the
    first member keeps the one pattern ``table`` and hands its scores to the others.
    """
    scratch = np.empty_like(out)
    context = np.empty_like(out)
    none = np.empty(0)
    for j in range(states.shape[0]):
        member_table = table if j == 0 else none
        ensemble_run(states[j], member_table, days[j], params[j], values, times, out if j == 0 else scratch, context)
        if j > 0:
            for i in range(out.shape[0]):
                out[i] = max(out[i], scratch[i])
