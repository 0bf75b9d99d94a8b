"""Missing 2D joints and 2D noise: training masks, evaluation masks, filling missing joints.

A keypoint mask is `(B, J) bool`, True = joint present. Two kinds of missing joints:

- **random joints**: any joints except the root, uniformly;
- **limb segments**: the distal part of one limb — a limb is a left/right chain of the skeleton
  from the joint whose parent is not on the same side (hip, shoulder) to its end effector
  (ankle, wrist); a segment of length n is the limb's last n joints (n = 1: the wrist/ankle,
  2: forearm/shin, 3: the whole limb). That is what occlusion and the image border take.

The root (joint 0, the pelvis) is never dropped: outputs are root-relative and the root's 2D
anchors the pose; keypoint layouts without a pelvis derive it from the hips before lifting.

2D noise is Gaussian in pixels, converted to normalised screen units with the camera
normalisation itself (`pixels_to_normalised`), so the formula lives in one place.

The grid of the robustness matrix (mask x noise, `diffupose.evaluation.robustness`) is plain data built
here (`row_label`, `matrix_pivot`), so the tables of robustness and the heatmaps of
`viz.uncertainty` read the same grid without the figures importing the evaluation.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..geometry.projection import normalize_screen_coordinates
from ..geometry.skeleton import H36M17_TO_HUMANEVA15, MEAN_POSE_2D_H36M17, Skeleton

__all__ = ["neighbour_fill", "graph_diameter", "limbs", "random_joint_mask", "evaluation_mask", "fill_missing",
           "fill_window_in_time", "short_gaps",
           "FILL_METHODS", "pixels_to_normalised", "add_pixel_noise", "MASK_MODES", "DETECTIONS", "row_label",
           "matrix_pivot"]

MASK_MODES = ("random", "limb")
DETECTIONS = "detections"      # the mask name of the robustness matrix's "real detections" row


@functools.lru_cache(maxsize=None)
def limbs(skeleton: Skeleton) -> tuple[tuple[int, ...], ...]:
    """The skeleton's limbs, each a chain (proximal -> distal) of left or right joints starting at
    a joint whose parent is on no side (H36M-17: both legs and both arms, 3 joints each)."""
    sides = [set(skeleton.joints_left), set(skeleton.joints_right)]
    children: dict[int, list[int]] = {}
    for j, p in enumerate(skeleton.parents):
        children.setdefault(p, []).append(j)
    out = []
    for side in sides:
        for start in sorted(side):
            if skeleton.parents[start] in side:
                continue
            chain = [start]
            while True:
                nxt = [c for c in children.get(chain[-1], []) if c in side]
                if len(nxt) != 1:
                    break
                chain.append(nxt[0])
            out.append(tuple(chain))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def _segment_table(skeleton: Skeleton) -> np.ndarray:
    """(L, S, J) bool: table[l, n - 1] = the last n joints of limb l (S = longest limb)."""
    ls = limbs(skeleton)
    longest = max(len(limb) for limb in ls)
    table = np.zeros((len(ls), longest, skeleton.num_joints), dtype=bool)
    for li, limb in enumerate(ls):
        for n in range(1, longest + 1):
            table[li, n - 1, list(limb[-n:])] = True
    return table


def random_joint_mask(batch_size: int, skeleton: Skeleton, *, joint_prob: float = 0.0, limb_prob: float = 0.0,
                      max_missing: int = 4, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """Training mask (B, J) bool, True = present.

    Per sample, independently: with probability `limb_prob` a limb segment goes missing (a random
    limb, its last 1..3 joints, uniformly); with probability `joint_prob` 1..max_missing random
    non-root joints go missing (uniformly). At most `max_missing` joints are missing in total
    (limb joints first). Fully present samples keep a share (1 - joint_prob)(1 - limb_prob).
    """
    if not (0.0 <= joint_prob <= 1.0 and 0.0 <= limb_prob <= 1.0):
        raise ValueError(f"joint_prob and limb_prob must be in [0, 1], got {joint_prob}, {limb_prob}")
    if max_missing < 1 or max_missing >= skeleton.num_joints:
        raise ValueError(f"max_missing must be in [1, {skeleton.num_joints - 1}], got {max_missing}")
    J = skeleton.num_joints
    kw = dict(generator=generator, device=device)
    table = torch.as_tensor(_segment_table(skeleton), device=device)          # (L, S, J)
    num_limbs, longest = table.shape[:2]

    def rand(*shape):
        return torch.rand(shape, **kw)

    def randint(high, n):
        return torch.randint(0, high, (n,), **kw)

    has_limb = rand(batch_size) < limb_prob
    limb = randint(num_limbs, batch_size)
    seg_len = torch.clamp(randint(longest, batch_size) + 1, max=max_missing)
    limb_missing = table[limb, seg_len - 1] & has_limb[:, None]               # (B, J)
    has_random = rand(batch_size) < joint_prob
    k = (randint(max_missing, batch_size) + 1) * has_random
    total = torch.clamp(limb_missing.sum(1) + k, max=max_missing)             # >= limb count
    # rank joints: limb joints first, then a random order; the root never
    score = rand(batch_size, J)
    score = torch.where(limb_missing, score - 2.0, score)
    score[:, 0] = float("inf")
    rank = score.argsort(dim=1).argsort(dim=1)
    return ~(rank < total[:, None])


def evaluation_mask(num_samples: int, skeleton: Skeleton, num_missing: int, mode: str = "random",
                    seed: int = 0) -> np.ndarray:
    """Deterministic evaluation mask (N, J) bool, True = present, exactly `num_missing` joints
    missing per sample (never the root).

    `random`: num_missing non-root joints uniformly. `limb`: num_missing joints as distal limb
    segments over ceil(num_missing / 3) distinct random limbs, split as evenly as possible
    (1: a wrist/ankle, 2: a forearm/shin, 4: two forearms/shins, 6: two whole limbs).
    """
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; known: {list(MASK_MODES)}")
    J = skeleton.num_joints
    rng = np.random.default_rng(seed)
    mask = np.ones((num_samples, J), dtype=bool)
    if num_missing == 0:
        return mask
    if mode == "random":
        if not 0 < num_missing < J:
            raise ValueError(f"num_missing must be in [0, {J - 1}], got {num_missing}")
        order = np.argsort(rng.random((num_samples, J - 1)), axis=1)[:, :num_missing] + 1
        np.put_along_axis(mask, order, False, axis=1)
        return mask
    ls = limbs(skeleton)
    longest = max(len(limb) for limb in ls)
    num_limbs = -(-num_missing // longest)
    if num_missing < 0 or num_limbs > len(ls):
        raise ValueError(f"num_missing={num_missing} needs more than the {len(ls)} limbs of {skeleton.name}")
    lengths = [num_missing // num_limbs + (i < num_missing % num_limbs) for i in range(num_limbs)]
    chosen = np.argsort(rng.random((num_samples, len(ls))), axis=1)[:, :num_limbs]
    for i, n in enumerate(lengths):
        for li, limb in enumerate(ls):
            rows = chosen[:, i] == li
            mask[np.ix_(rows, list(limb[-n:]))] = False
    return mask


FILL_METHODS = ("template", "neighbour")


def fill_window_in_time(window: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Missing joints of 2D windows filled along time from the window's own frames.

    window (B, W, J, C), present (B, W, J) bool (True = present) -> (filled window, present
    (B, W, J)). A joint missing in some frames of a window and present in others is linearly
    interpolated between the nearest frames where it is present, and held at the nearest one
    beyond them; it then counts as present in every frame. A joint missing in every frame is left
    as it is and stays missing. Present joints are returned unchanged, so a mask that is the same
    in every frame returns the window and mask exactly as given.

    Why: a windowed model is trained with missing joints that are missing in the whole window
    (one occlusion), but a track's detector drops a joint in single frames. Read as per-frame
    masks, that flicker cost h36m-det-video 13.5 mm on S8 detections (each joint missing in 10 % of
    frames: 76.6 against 63.1 mm with this fill; benchmarks/RECIPES.md 6f). The window's frames
    are filled by position in the window, whatever gaps the track had between them."""
    B, W, J = present.shape
    present = present.to(device=window.device, dtype=torch.bool)
    frame = torch.arange(W, device=window.device).view(1, W, 1).expand(B, W, J)
    before = torch.where(present, frame, -1).cummax(dim=1).values                  # last present frame <= k
    after = torch.where(present, frame, W).flip(1).cummin(dim=1).values.flip(1)    # first present frame >= k
    lo = torch.where(before >= 0, before, after).clamp(0, W - 1)
    hi = torch.where(after < W, after, before).clamp(0, W - 1)
    weight = torch.where(hi > lo, (frame - lo).to(window.dtype) / (hi - lo).clamp(min=1).to(window.dtype),
                         torch.zeros((), dtype=window.dtype, device=window.device)).unsqueeze(-1)

    def at(k: torch.Tensor) -> torch.Tensor:
        return window.gather(1, k.unsqueeze(-1).expand(B, W, J, window.shape[-1]))

    seen = present.any(dim=1, keepdim=True).expand(B, W, J)
    filled = torch.where((seen & ~present).unsqueeze(-1), (1 - weight) * at(lo) + weight * at(hi), window)
    return filled, seen


def short_gaps(present: np.ndarray, times: np.ndarray, max_gap: float) -> np.ndarray:
    """The missing joints of a track that sit in a short gap: present (F, J) bool, times (F,)
    increasing frame numbers -> (F, J) bool, True where a joint is missing in a frame but present
    in a frame before and a frame after it at most `max_gap` frame numbers apart. Linear
    interpolation in time (`fill_missing` with track=True) estimates those well: the single-frame
    h36m-det, given each joint missing in 10 % of S8's frames, scores 74.7 mm with them masked and
    67.9 interpolated from frames at most 0.2 s apart (68.1 with nothing missing; RECIPES 6f)."""
    present = np.asarray(present, dtype=bool)
    times = np.asarray(times, dtype=np.float64)
    if present.ndim != 2 or times.shape != present.shape[:1]:
        raise ValueError(f"short_gaps: present (F, J) and times (F,), got {present.shape} and {times.shape}")
    F = len(times)
    frame = np.broadcast_to(np.arange(F)[:, None], present.shape)
    before = np.maximum.accumulate(np.where(present, frame, -1), axis=0)
    after = np.minimum.accumulate(np.where(present, frame, F)[::-1], axis=0)[::-1]
    inside = ~present & (before >= 0) & (after < F)
    span = times[np.clip(after, 0, F - 1)] - times[np.clip(before, 0, F - 1)]
    return inside & (span <= max_gap)


def fill_missing(keypoints_2d, keypoint_mask, skeleton: Skeleton, method: str = "template", track: bool = False,
                 times=None):
    """Estimates for missing 2D joints, for a model trained without missing-joint masking.

    keypoints_2d: (..., J, 2) normalised, np or torch (missing joints may be NaN);
    keypoint_mask: (..., J) bool, True = present. Returns a filled copy of the same type (float
    dtype kept; other dtypes -> float32). Two steps:

    1. `track=True` (keypoints (N, J, 2), N frames of one person): a joint is linearly
       interpolated in time between the frames where it is present (held constant beyond the
       first/last), at the frame numbers `times` (N,) when given (a track with missing frames),
       else 0..N-1; joints never present in the track are left to step 2.
    2. each remaining joint, frame by frame, by `method`:
       - `template`: the mean pose (`MEAN_POSE_2D_H36M17`) fitted to the joints present in that
         frame by least-squares scale and translation (translation only when one joint is
         present), or its mirror image when that fits better. Best on whole limbs (the
         robustness benchmark compares both); what `lift` uses.
       - `neighbour`: the mean of the joint's known skeleton neighbours (parent and children),
         repeated outward until every joint is filled.

    Raises ConfigError for an unknown method, DataError when a frame that needs step 2 has no
    joint present.
    """
    if method not in FILL_METHODS:
        raise ConfigError(f"unknown fill method {method!r}; known: {', '.join(FILL_METHODS)}")
    is_torch = isinstance(keypoints_2d, torch.Tensor)
    kp = keypoints_2d.detach().cpu().numpy() if is_torch else np.asarray(keypoints_2d)
    present = np.asarray(keypoint_mask.cpu() if isinstance(keypoint_mask, torch.Tensor) else keypoint_mask,
                         dtype=bool)
    if present.shape != kp.shape[:-1]:
        raise ValueError(f"keypoint_mask shape {present.shape} does not match keypoints {kp.shape}")
    out = np.array(kp, dtype=np.float64)
    todo = ~present
    if track:
        todo = _interpolate_in_time(out, present, times)
    stuck = todo.any(axis=-1) & ~present.any(axis=-1)
    if stuck.any():
        raise DataError(f"sample {int(np.flatnonzero(stuck.reshape(-1))[0])}: every joint is missing")
    if todo.any():
        spatial_fill = _fill_from_template if method == "template" else _fill_from_neighbours
        out = spatial_fill(out, present, todo, skeleton)
    out = out.astype(kp.dtype if kp.dtype.kind == "f" else np.float32)
    return torch.as_tensor(out, device=keypoints_2d.device) if is_torch else out


def _interpolate_in_time(xy: np.ndarray, present: np.ndarray, times=None) -> np.ndarray:
    """Fill, in place, each joint of a track (N, J, 2) by linear interpolation in time (frame
    numbers `times`, default 0..N-1) over the frames where it is present; -> (N, J) bool, the
    joints still missing (never present in the track)."""
    if xy.ndim != 3:
        raise ValueError(f"track filling needs keypoints (N, J, 2), got shape {xy.shape}")
    todo = ~present
    if len(xy) < 2:
        return todo
    frames = np.arange(len(xy), dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    if frames.shape != (len(xy),):
        raise ValueError(f"track filling: times of shape {frames.shape} for {len(xy)} frames")
    for j in range(xy.shape[1]):
        have = present[:, j]
        if have.any() and not have.all():
            for c in range(2):
                xy[~have, j, c] = np.interp(frames[~have], frames[have], xy[have, j, c])
            todo[:, j] = False
    return todo


def _fill_from_neighbours(xy: np.ndarray, present: np.ndarray, todo: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """`todo` joints of xy (..., J, 2) <- mean of their known skeleton neighbours, outward."""
    adjacency = torch.from_numpy(skeleton.adjacency()).double()
    out = neighbour_fill(torch.from_numpy(np.ascontiguousarray(xy, dtype=np.float64)), torch.from_numpy(~todo),
                         adjacency, graph_diameter(adjacency))
    return out.numpy()


def graph_diameter(adjacency) -> int:
    """Longest shortest path (in edges) of a connected skeleton graph (J, J) — how many
    neighbour_fill hops reach every joint from any present one."""
    a = np.asarray(adjacency.cpu() if isinstance(adjacency, torch.Tensor) else adjacency) > 0
    reach, hops = np.eye(len(a), dtype=bool), 0
    while not reach.all():
        grown = reach | (reach.astype(np.int64) @ a.astype(np.int64) > 0)
        if (grown == reach).all():
            raise ValueError("graph_diameter: the skeleton graph is not connected")
        reach, hops = grown, hops + 1
    return hops


def neighbour_fill(keypoints_2d: torch.Tensor, present: torch.Tensor, adjacency: torch.Tensor, hops: int) -> torch.Tensor:
    """Missing joints' 2D <- the mean of their known skeleton neighbours, `hops` times outward
    (a fixed count, so torch.compile sees no data-dependent loop; graph_diameter(adjacency)
    hops fill every joint of a sample with at least one joint present).
    keypoints_2d (..., J, 2) (missing values may be NaN), present (..., J) bool,
    adjacency (J, J) binary without self-loops -> filled (..., J, 2)."""
    known = present.to(keypoints_2d.dtype).unsqueeze(-1)                              # (..., J, 1)
    out = torch.where(present.unsqueeze(-1), keypoints_2d, torch.zeros((), dtype=keypoints_2d.dtype,
                                                                       device=keypoints_2d.device))
    adjacency = adjacency.to(keypoints_2d.dtype)
    for _ in range(hops):
        count = torch.matmul(adjacency, known)                                         # known neighbours
        total = torch.matmul(adjacency, out * known)
        new = (known == 0) & (count > 0)
        out = torch.where(new, total / count.clamp_min(1.0), out)
        known = torch.maximum(known, new.to(known.dtype))
    return out


def _fill_from_template(xy: np.ndarray, present: np.ndarray, todo: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """`todo` joints of xy (..., J, 2) <- the mean pose (or its mirror) fitted to the present joints."""
    out = xy.reshape(-1, *xy.shape[-2:])
    present, todo = present.reshape(out.shape[:2]), todo.reshape(out.shape[:2])
    template = _template(skeleton)
    mirrored = template * np.array([-1.0, 1.0])  # the same pose seen from behind
    for i in np.flatnonzero(todo.any(axis=1)):
        have = present[i]
        fill = min((_fit_template(t, have, out[i]) for t in (template, mirrored)), key=lambda r: r[1])[0]
        out[i, todo[i]] = fill[todo[i]]
    return out.reshape(xy.shape)


def _template(skeleton: Skeleton) -> np.ndarray:
    """The mean 2D pose (J, 2) in the skeleton's joint order."""
    if skeleton.name == "humaneva15":
        return MEAN_POSE_2D_H36M17[list(H36M17_TO_HUMANEVA15)]
    return MEAN_POSE_2D_H36M17


def _fit_template(template: np.ndarray, have: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares scale + translation of `template` onto the present joints -> (J, 2), residual."""
    src, dst = template[have], xy[have]
    scale = 0.215  # mean normalised pelvis-to-thorax length of the H36M data (one joint: offset only)
    if have.sum() >= 2:
        sc, dc = src - src.mean(0), dst - dst.mean(0)
        fitted = float((sc * dc).sum() / max((sc ** 2).sum(), 1e-12))
        scale = fitted if fitted > 0 else scale
    fill = template * scale + (dst.mean(0) - scale * src.mean(0))
    return fill, float(((fill[have] - dst) ** 2).sum())


def pixels_to_normalised(sigma_px, res_w: int, res_h: int):
    """A length in pixels -> normalised screen units (the scale of `normalize_screen_coordinates`)."""
    zero = normalize_screen_coordinates(np.zeros(2), res_w, res_h)
    unit = normalize_screen_coordinates(np.array([1.0, 0.0]), res_w, res_h)
    return np.asarray(sigma_px, dtype=np.float64) * float(unit[0] - zero[0])


def add_pixel_noise(keypoints_2d: np.ndarray, sigma_px: float, res_w, res_h, seed: int = 0) -> np.ndarray:
    """Add i.i.d. Gaussian 2D noise of `sigma_px` pixels to normalised keypoints (N, J, 2) (or
    windows (N, W, J, 2)); res_w/res_h: image size, scalars or (N,) per sample. Deterministic
    given `seed`."""
    keypoints_2d = np.asarray(keypoints_2d)
    if sigma_px == 0:
        return keypoints_2d.copy()
    res_w = np.broadcast_to(np.asarray(res_w), keypoints_2d.shape[:1])
    res_h = np.broadcast_to(np.asarray(res_h), keypoints_2d.shape[:1])
    scale = np.array([pixels_to_normalised(sigma_px, w, h) for w, h in zip(res_w, res_h)])
    noise = np.random.default_rng(seed).standard_normal(keypoints_2d.shape)
    return (keypoints_2d + noise * scale.reshape((-1,) + (1,) * (keypoints_2d.ndim - 1))).astype(keypoints_2d.dtype)


# ----------------------------------------------------------------------------------------------
# The robustness grid: rows {mask, missing, noise_px, <metric>: mm} -> labels and a (mask, σ) array


def row_label(row: dict) -> str:
    """A matrix row's label: "none", "2 random", "1 limb", or "real detections"."""
    if row["mask"] == DETECTIONS:
        return "real detections"
    return "none" if row["missing"] == 0 else f"{row['missing']} {row['mask']}"


def matrix_pivot(rows: list[dict], metric: str = "mpjpe_aggregate") -> tuple[list[str], list[float], np.ndarray]:
    """One model's rows -> (mask labels, σ values, (masks, σ) array of `metric`, NaN where absent):
    the grid a heatmap shows."""
    labels = []
    for r in rows:
        label = row_label(r)
        if label not in labels:
            labels.append(label)
    sigmas = sorted({r["noise_px"] for r in rows})
    grid = np.full((len(labels), len(sigmas)), np.nan)
    for r in rows:
        value = r.get(metric)
        label = row_label(r)
        grid[labels.index(label), sigmas.index(r["noise_px"])] = np.nan if value is None else value
    return labels, sigmas, grid
