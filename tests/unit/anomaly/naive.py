"""Plain NumPy/Python references of every anomaly kernel (slow, obvious, for tests only).

The windowed Gaussian reference recomputes mean and standard deviation of the window from
scratch at every step (the kernel keeps running sums). The ensemble reference spells the
recurrences out with named variables, value by value.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from edge_config.anomaly import EnsembleSettings

F64 = npt.NDArray[np.float64]
MAX_ABS = 1e150


def _missing(x: float) -> bool:
    return not abs(x) <= MAX_ABS


def windowed_gaussian(values: F64, window: int) -> F64:
    """Score = erf(|z|/sqrt 2) against the previous `window` present values."""
    out = np.zeros(len(values))
    history: list[float] = []
    for i, x in enumerate(values.tolist()):
        if _missing(x):
            continue
        if len(history) >= 2:
            # Deviations from one window element keep 1e12 + noise series exact in float64.
            win = np.array(history[-window:])
            dev = win - win[0]
            mean = float(np.mean(dev))
            sd = float(np.std(dev))
            if sd > 0.0:
                out[i] = math.erf(abs((x - win[0]) - mean) / sd / math.sqrt(2.0))
            elif x - win[0] != mean:
                out[i] = 1.0
        history.append(x)
    return out


def ensemble(values: F64, times: F64, cfg: EnsembleSettings) -> F64:
    """The ensemble detector: one member per fast span, each alone; a reading scores their largest."""
    out: F64 = np.max([_member(values, times, cfg, span) for span in cfg.fast_spans], axis=0)
    return out


def _member(values: F64, times: F64, cfg: EnsembleSettings, fast_span: float) -> F64:
    """One member, one value at a time, with every estimate a named variable."""
    n_ch = 5
    bins = cfg.day_bins
    day_loc = [0.0] * bins
    day_spread = [0.0] * bins
    day_count = [0] * bins
    day_last_alarm = [-math.inf] * bins
    day_alarm_repeats = [0] * bins
    out = np.zeros(len(values))
    table = np.zeros(1 << cfg.context_bits)
    count = 0
    level = spread = fast_mean = change_mean = change_spread = previous = 0.0
    q1 = q2 = 0
    suppressed = 0.0
    frozen_for = 0.0  # nominal intervals the value has not changed for
    last_time = math.nan  # time of the latest reading with a finite time
    nominal = 0.0  # running median of the intervals between readings (0: none seen yet)
    short = [0.0] * n_ch
    long_mean = [0.0] * n_ch
    long_var = [0.0] * n_ch
    level_seconds = cfg.level_days * 86400.0
    a_fast = 1.0 / fast_span
    for i, x in enumerate(values.tolist()):
        if _missing(x):
            continue
        if count == 0:
            level = fast_mean = previous = x
            spread = change_spread = 0.0
        # k: time since the previous timed reading, in nominal intervals (1 when unknown)
        k = 1.0
        t = float(times[i])
        if math.isfinite(t):
            if math.isfinite(last_time):
                dt = t - last_time
                if dt > 0.0:
                    if nominal <= 0.0:
                        nominal = dt
                    elif dt / nominal > 2.0**0.125:
                        k = dt / nominal
                        nominal *= 2.0**0.125
                    elif dt / nominal * 2.0**0.125 < 1.0:
                        k = dt / nominal
                        nominal /= 2.0**0.125
                last_time = max(last_time, t)
            else:
                last_time = t
        # The level remembers level_days by the clock; the pattern bins are the Freedman-Diaconis
        # width (2 IQR n^(-1/3), IQR = 1.349 sigma = 1.349 sqrt(pi/2) mean absolute deviations) for
        # n = the readings in that time. No clock yet: a running mean, n = the readings so far.
        a_level = min(nominal / level_seconds, 1.0) if nominal > 0.0 else 0.0
        in_level = level_seconds / nominal if nominal > 0.0 else count + 1.0
        quantum = 2.0 * 1.349 * math.sqrt(math.pi / 2.0) * in_level ** (-1.0 / 3.0)
        # The quiet after an alarm: quiet_minutes by the clock, at least short_span readings.
        quiet_for = float(math.ceil(cfg.short_span))
        if nominal > 0.0:
            quiet_for = max(quiet_for, cfg.quiet_minutes * 60.0 / nominal)
        change = x - previous
        if k > 1.0:
            change /= math.sqrt(k)
        eps = 1e-12 + 1e-9 * abs(level)
        raw = [
            min(abs(x - level) / (spread + eps), 50.0),
            min(abs(change - change_mean) / (change_spread + eps), 50.0),
            min(abs(fast_mean - level) / (spread + eps), 50.0),
            0.0,
            0.0,
        ]
        levels = min(cfg.clip / quantum, 64.0)
        q = int(np.clip(math.floor((x - level) / (quantum * spread + eps)), -levels, levels))
        key = ((q + 64) * 131 + (q1 + 64)) * 131 + (q2 + 64)
        slot = (key * 2654435761) % len(table)
        raw[3] = 1.0 / (1.0 + table[slot])  # a pattern once seen stays known
        table[slot] += 1.0
        q1, q2 = q, q1
        if bins and math.isfinite(t):
            b = math.floor((t % 86400.0) / 86400.0 * bins) % bins
            loc, spr, cnt = day_loc[b], day_spread[b], day_count[b]
            if cnt >= cfg.day_span:
                raw[4] = min(abs(x - loc) / (spr + spread / cfg.day_span + eps), 50.0)  # unit: >= one reading's step
                x_day = min(max(x, loc - cfg.alarm_z * spr), loc + cfg.alarm_z * spr)  # clipped at the alarm level
                dev_day = min(abs(x - loc), cfg.alarm_z * spr)
            else:
                x_day, dev_day = x, abs(x - loc)
            if cnt == 0:
                day_loc[b] = x
            else:
                a_day = 1.0 / cfg.day_span
                rate_day = a_day if cnt * a_day > 1.0 else 1.0 / (cnt + 1.0)
                day_loc[b] = loc + rate_day * (x_day - loc)
                day_spread[b] = spr + rate_day * (dev_day - spr)
            day_count[b] = cnt + 1
        rate = a_level if count * a_level > 1.0 else 1.0 / (count + 1.0)
        if count >= cfg.warmup:
            x_used = min(max(x, level - cfg.clip * spread), level + cfg.clip * spread)
            dev_used = min(abs(x - level), cfg.clip * spread)
            lo, hi = change_mean - cfg.clip * change_spread, change_mean + cfg.clip * change_spread
            change_used = min(max(change, lo), hi)
            change_dev_used = min(abs(change - change_mean), cfg.clip * change_spread)
        else:
            x_used, dev_used = x, abs(x - level)
            change_used, change_dev_used = change, abs(change - change_mean)
        level += rate * (x_used - level)
        spread += rate * (dev_used - spread)
        fast_mean += a_fast * (x - fast_mean)
        change_mean += rate * (change_used - change_mean)
        change_spread += rate * (change_dev_used - change_spread)
        previous = x
        a_long = 1.0 / cfg.long_span
        long_rate = a_long if count * a_long > 1.0 else 1.0 / (count + 1.0)
        z = 0.0
        for ch in range(n_ch):
            short[ch] += (1.0 / cfg.short_span) * (raw[ch] - short[ch])
            if count >= cfg.warmup:
                z = max(z, (short[ch] - long_mean[ch]) / (math.sqrt(long_var[ch]) + 1e-3))
            old = long_mean[ch]
            long_mean[ch] = old + long_rate * (raw[ch] - old)
            long_var[ch] += long_rate * ((raw[ch] - old) * (raw[ch] - long_mean[ch]) - long_var[ch])
        count += 1
        score = z / (z + cfg.z_scale)
        quiet = False
        if suppressed > 0:
            left = suppressed - k  # nominal intervals of quiet left after this reading
            quiet = left >= 0.0
            suppressed = max(left, 0.0)
            if quiet and left == 0.0 and z >= cfg.alarm_z:
                suppressed = 1.0
        frozen_for = frozen_for + k if change == 0.0 else 0.0
        if quiet or frozen_for > quiet_for:
            score = 0.0
        elif z >= cfg.alarm_z:
            suppressed = quiet_for
            if bins and math.isfinite(t):
                b = math.floor((t % 86400.0) / 86400.0 * bins) % bins
                repeats = 0
                for near in ((b - 1) % bins, b, (b + 1) % bins):
                    if 43200.0 <= t - day_last_alarm[near] <= cfg.recur_days * 86400.0:
                        repeats = max(repeats, day_alarm_repeats[near] + 1)
                day_last_alarm[b] = t
                day_alarm_repeats[b] = repeats
                score *= cfg.recur_decay**repeats
        else:
            score = 0.0  # only a reading that raises an alarm scores
        out[i] = score
    return out
