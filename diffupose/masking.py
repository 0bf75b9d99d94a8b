"""Missing 2D joints and 2D noise: training masks, evaluation masks, neighbour filling.

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
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .camera import normalize_screen_coordinates
from .skeleton import Skeleton

__all__ = ["limbs", "random_joint_mask", "evaluation_mask", "fill_missing_joints", "pixels_to_normalised",
           "add_pixel_noise", "MASK_MODES"]

MASK_MODES = ("random", "limb")


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


def fill_missing_joints(keypoints_2d, keypoint_mask, skeleton: Skeleton):
    """Fill missing joints with the mean of their present skeleton neighbours (parent and
    children), repeated outward until every joint is filled — the fallback for a model without
    missing-joint support. keypoints_2d: (..., J, 2) np or torch; keypoint_mask: (..., J) bool.
    Returns a filled copy of the same type. Raises ValueError when a sample has no joint present."""
    is_torch = isinstance(keypoints_2d, torch.Tensor)
    kp = keypoints_2d.detach().cpu().numpy() if is_torch else np.asarray(keypoints_2d)
    known = np.asarray(keypoint_mask.cpu() if isinstance(keypoint_mask, torch.Tensor) else keypoint_mask, dtype=bool)
    if known.shape != kp.shape[:-1]:
        raise ValueError(f"keypoint_mask shape {known.shape} does not match keypoints {kp.shape}")
    if not known.any(axis=-1).all():
        raise ValueError("fill_missing_joints: a sample has no joint present")
    adj = skeleton.adjacency().astype(np.float64)                               # (J, J)
    out = np.where(known[..., None], kp, 0.0).astype(np.float64)
    known = known.copy()
    while not known.all():
        w = known.astype(np.float64)
        count = w @ adj                                                          # (..., J) known neighbours
        total = np.einsum("ij,...jc->...ic", adj, out * w[..., None])
        new = ~known & (count > 0)
        out = np.where(new[..., None], total / np.maximum(count, 1.0)[..., None], out)
        known |= new
    out = out.astype(kp.dtype if kp.dtype.kind == "f" else np.float32)
    return torch.as_tensor(out, device=keypoints_2d.device) if is_torch else out


def pixels_to_normalised(sigma_px, res_w: int, res_h: int):
    """A length in pixels -> normalised screen units (the scale of `normalize_screen_coordinates`)."""
    zero = normalize_screen_coordinates(np.zeros(2), res_w, res_h)
    unit = normalize_screen_coordinates(np.array([1.0, 0.0]), res_w, res_h)
    return np.asarray(sigma_px, dtype=np.float64) * float(unit[0] - zero[0])


def add_pixel_noise(keypoints_2d: np.ndarray, sigma_px: float, res_w, res_h, seed: int = 0) -> np.ndarray:
    """Add i.i.d. Gaussian 2D noise of `sigma_px` pixels to normalised keypoints (N, J, 2);
    res_w/res_h: image size, scalars or (N,) per sample. Deterministic given `seed`."""
    keypoints_2d = np.asarray(keypoints_2d)
    if sigma_px == 0:
        return keypoints_2d.copy()
    res_w = np.broadcast_to(np.asarray(res_w), keypoints_2d.shape[:1])
    res_h = np.broadcast_to(np.asarray(res_h), keypoints_2d.shape[:1])
    scale = np.array([pixels_to_normalised(sigma_px, w, h) for w, h in zip(res_w, res_h)])
    noise = np.random.default_rng(seed).standard_normal(keypoints_2d.shape)
    return (keypoints_2d + noise * scale[:, None, None]).astype(keypoints_2d.dtype)
