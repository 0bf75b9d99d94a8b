"""2D windows of a windowed model (`model.window = W > 1`), built by index.

A prepared file stores one sample per (sequence, camera, frame), each (sequence, camera) track
in frame order. The window of sample i is the W samples of its track centred on i; at the ends
of a track the first or last frame is repeated (edge replication). Windows are never stored:
`track_bounds` gives each sample the first and last index of its track once, and
`window_index` turns any rows into (rows, W) indices into the same arrays, so a batch gathers
its windows (`keypoints_2d[window_index(...)]`) without W-fold copies of the data. The frames of
a window are consecutive samples of the file: a file prepared with `--stride s` has windows
that span W·s video frames (the run records the stride; `frame_step`).

`track_windows` does the same for one track given to `diffupose lift`, at any frame rate: the
window is defined at the training frame rate, so a track at another rate is resampled (linear
interpolation in time between the two nearest frames, missing joints taken from whichever of the
two has them).
"""
from __future__ import annotations

import re

import numpy as np
import torch

__all__ = ["track_bounds", "window_index", "window_offsets", "frame_step", "track_windows", "sample_windows",
           "frame_numbers", "trailing_numbers", "MAX_GAP_S"]


def window_offsets(window: int) -> np.ndarray:
    """(W,) int64 offsets of a window's frames from its centre: -W//2 .. W//2."""
    return np.arange(window, dtype=np.int64) - window // 2


def track_bounds(subject, sequence, camera, frame) -> tuple[np.ndarray, np.ndarray]:
    """Per sample (file order), the first and last index of its track: a maximal run of samples
    with the same subject, sequence and camera whose frame numbers increase by the same step
    (a gap or a repeat starts a new track). -> (lo, hi), each (S,) int64."""
    frame = np.asarray(frame, dtype=np.int64)
    n = len(frame)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.ones(n, dtype=bool)
    same = ((np.asarray(subject)[1:] == np.asarray(subject)[:-1]) & (np.asarray(sequence)[1:] == np.asarray(sequence)[:-1])
            & (np.asarray(camera)[1:] == np.asarray(camera)[:-1]))
    diff = np.diff(frame)
    step = frame_step(frame, same)
    start[1:] = ~(same & (diff == step))
    first = np.flatnonzero(start)
    track = np.cumsum(start) - 1
    last = np.append(first[1:] - 1, n - 1)
    return first[track], last[track]


def frame_step(frame, same_track=None) -> int:
    """The most common positive frame difference between neighbouring samples of one track (the
    prepared stride); 1 when there is none."""
    diff = np.diff(np.asarray(frame, dtype=np.int64))
    if same_track is not None:
        diff = diff[np.asarray(same_track)]
    diff = diff[diff > 0]
    if len(diff) == 0:
        return 1
    values, counts = np.unique(diff, return_counts=True)
    return int(values[np.argmax(counts)])


def window_index(lo, hi, rows, window: int):
    """Indices (len(rows), W) of the windows of `rows`: rows + offsets, clamped to each row's
    track [lo, hi] (edge replication). numpy arrays or torch tensors (all of one kind)."""
    if isinstance(rows, torch.Tensor):
        offsets = torch.as_tensor(window_offsets(window), device=rows.device)
        idx = rows[:, None] + offsets
        return torch.minimum(torch.maximum(idx, lo[rows][:, None]), hi[rows][:, None])
    rows = np.asarray(rows, dtype=np.int64)
    return np.clip(rows[:, None] + window_offsets(window), np.asarray(lo)[rows][:, None], np.asarray(hi)[rows][:, None])


def trailing_numbers(names) -> np.ndarray | None:
    """The last run of digits of every name ("frame_000012.jpg" -> 12, "clip3_000012_keypoints"
    -> 12) as int64, or None when a name has none."""
    numbers = []
    for name in names:
        digits = re.findall(r"\d+", str(name))
        if not digits:
            return None
        numbers.append(int(digits[-1]))
    return np.asarray(numbers, dtype=np.int64)


def frame_numbers(frame) -> np.ndarray | None:
    """Frame ids as increasing float frame numbers: numbers, numeric strings, or image / file
    names whose last number is the frame ("frame_000012.jpg"); None when they are not increasing
    (repeats, unordered, names without numbers): then they do not say when a frame was."""
    try:
        times = np.asarray(frame, dtype=np.float64)
    except (TypeError, ValueError):
        numbers = trailing_numbers(np.asarray(frame).reshape(-1))
        if numbers is None or np.ndim(frame) != 1:
            return None
        times = numbers.astype(np.float64)
    if times.ndim != 1 or not np.all(np.isfinite(times)) or not np.all(np.diff(times) > 0):
        return None
    return times


def sample_windows(data, index, window: int, keypoints: np.ndarray | None = None) -> np.ndarray:
    """The 2D input of the samples `index` of a prepared file `data` (a PreparedData) for a
    model reading `window` frames: `keypoints` (default data.keypoints_2d; e.g. keypoints_2d_gt)
    at `index`, (n, J, 2) for window 1, else their windows (n, W, J, 2) within their tracks."""
    keypoints = data.keypoints_2d if keypoints is None else keypoints
    index = np.asarray(index, dtype=np.int64)
    if window == 1:
        return keypoints[index]
    lo, hi = track_bounds(data.subject, data.sequence, data.camera, data.frame)
    return keypoints[window_index(lo, hi, index, window)]


# Missing frames shorter than this are interpolated across by a window; a longer gap is treated as
# a track end on each side (the nearer frame repeated), since the person has moved on meanwhile.
MAX_GAP_S = 0.2


def track_windows(keypoints_2d: np.ndarray, present: np.ndarray | None, window: int, rate: float = 1.0,
                  times: np.ndarray | None = None, max_gap: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The windows of every frame of one track: keypoints_2d (F, J, 2), present (F, J) bool or
    None -> ((F, W, J, 2), (F, W, J) or None).

    `times` (F,) increasing frame numbers (default 0..F-1; gaps = missing frames); `rate` = the
    track's frame rate / the model's training frame rate (a 25 fps track for a 50 fps model: 0.5).
    Window frame k of frame i sits at time times[i] + (k - W//2) · rate, clamped to the track's
    ends, and is linearly interpolated between the two frames around it (so missing frames and
    other frame rates are resampled); a joint missing in one of the two takes the other's value,
    missing in both stays missing. At a whole frame only that frame counts. Two frames more than
    `max_gap` frame numbers apart (None: no limit) are not interpolated between: a window frame
    in that gap is the nearer of the two, as at a track's end, its missing joints missing."""
    keypoints_2d = np.asarray(keypoints_2d, dtype=np.float32)
    n = keypoints_2d.shape[0]
    times = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if times.shape != (n,) or (n > 1 and not np.all(np.diff(times) > 0)):
        raise ValueError(f"track_windows: times must be {n} increasing frame numbers, got shape {times.shape}")
    target = times[:, None] + window_offsets(window)[None] * float(rate)
    pos = np.interp(target, times, np.arange(n, dtype=np.float64))          # fractional index, clamped
    a = np.floor(pos).astype(np.int64)
    b = np.minimum(a + 1, n - 1)
    w = (pos - a).astype(np.float32)                                        # weight of frame b
    if max_gap is not None:
        w = np.where(times[b] - times[a] > max_gap, (w >= 0.5).astype(np.float32), w)
    ka, kb = np.nan_to_num(keypoints_2d[a]), np.nan_to_num(keypoints_2d[b])
    if present is None:
        return ((1 - w[..., None, None]) * ka + w[..., None, None] * kb).astype(np.float32), None
    present = np.asarray(present, dtype=bool)
    pa, pb = present[a] & (w[..., None] < 1), present[b] & (w[..., None] > 0)
    wb = np.where(pa & pb, w[..., None], np.where(pb, 1.0, 0.0)).astype(np.float32)[..., None]
    return ((1 - wb) * ka + wb * kb).astype(np.float32), pa | pb
