"""Non-widget logic of the hypothesis explorer: pick a sample of a prepared dataset by subject,
action and frame, run the sampler on it with given settings, and collect the hypotheses, the
denoising trajectory, the aggregate pose, the per-joint spread and the sample's errors.

Used by `diffupose.workbench.widgets` (live explorer) and notebook 05 (static figures); testable
without a browser or a kernel. Poses are metres, root-relative, camera frame; hypothesis
sets are (H, J, 3) for one sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.windows import sample_windows
from ..errors import DataError
from ..evaluation.metrics import hypothesis_spread, mpjpe
from ..evaluation.scoring import input_source_of
from ..geometry.skeleton import Skeleton
from ..inference.lifter import Lifter, SamplingSettings
from ..viz import hypotheses_3d_figure, pose_2d_figure, spread_figure, trajectory_figure

__all__ = [
    "HypothesisResult", "subjects_and_actions", "sample_indices",
    "find_sample", "sample_label", "sample_hypotheses", "explore_sample", "result_figures", "result_spread_figure",
]


def subjects_and_actions(data) -> dict[str, list[str]]:
    """Subjects of a PreparedData, each with its sorted actions."""
    out: dict[str, list[str]] = {}
    for subject in sorted(set(data.subject.tolist())):
        out[subject] = sorted(set(data.action[data.subject == subject].tolist()))
    return out


def sample_indices(data, subject: str, action: str) -> np.ndarray:
    """Indices of the samples of (subject, action), ordered by sequence, camera, frame."""
    index = np.flatnonzero((data.subject == subject) & (data.action == action))
    if index.size == 0:
        raise DataError(f"{data.dataset}: no samples for subject {subject!r}, action {action!r}")
    order = np.lexsort((data.frame[index], data.camera[index], data.sequence[index]))
    return index[order]


def find_sample(data, subject: str | None = None, action: str | None = None, frame: int | None = None,
                index: int = 0) -> int:
    """Index of one sample: with subject and action, the sample of that pair whose frame number
    is closest to `frame` (the first sequence/camera; the first frame when frame is None);
    otherwise `index` itself (bounds-checked)."""
    if subject and action:
        candidates = sample_indices(data, subject, action)
        if frame is None:
            return int(candidates[0])
        first = candidates[(data.sequence[candidates] == data.sequence[candidates[0]])
                           & (data.camera[candidates] == data.camera[candidates[0]])]
        return int(first[np.argmin(np.abs(data.frame[first].astype(np.int64) - int(frame)))])
    if not 0 <= int(index) < len(data):
        raise DataError(f"{data.dataset}: sample index {index} out of range (0..{len(data) - 1})")
    return int(index)


def sample_label(data, index: int) -> str:
    """Human-readable name of a sample: `S1 Walking · S1/Walking 1 · cam 54138969 · frame 120`."""
    return (f"{data.subject[index]} {data.action[index]} · {data.sequence[index]} · "
            f"cam {data.camera[index]} · frame {int(data.frame[index])}")


def sample_hypotheses(lifter: Lifter, keypoints_2d, *, num_hypotheses: int = 5, sampler: str = "ddim",
                      num_steps: int = 5, seed: int = 0, flip: bool = False, eta: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """keypoints_2d: (J, 2) normalised screen coords (a windowed model: the window (W, J, 2)) -> hypotheses (H, J, 3) and the
    denoising trajectory (S+1, H, J, 3), entry 0 = x_T, last = x_0 (metres, camera frame).
    Seeded through the shared inference path: the same settings give the same hypotheses as
    `Lifter.sample` (and so as evaluate and `diffupose sample`)."""
    settings = SamplingSettings(num_hypotheses=int(num_hypotheses), sampler=sampler, num_steps=int(num_steps),
                                eta=eta, flip=bool(flip), seed=int(seed))
    hyps, trajectory = lifter.sample_tensor(np.asarray(keypoints_2d, dtype=np.float32)[None], settings,
                                            return_trajectory=True)
    return hyps[0].float().cpu().numpy(), trajectory[:, 0].float().cpu().numpy()


@dataclass
class HypothesisResult:
    """One sample's hypotheses. Arrays in metres; `spread` is the mean distance of the
    hypotheses to their mean, per joint (ground-truth free); `radius_90` the per-joint radius of
    the 90 % band (`Lifter.radii`: calibrated when `calibration["calibrated"]`)."""

    index: int
    label: str
    keypoints_2d: np.ndarray          # (J, 2)
    gt: np.ndarray | None             # (J, 3)
    hypotheses: np.ndarray            # (H, J, 3)
    trajectory: np.ndarray            # (S+1, H, J, 3)
    aggregate: np.ndarray             # (J, 3)
    spread: np.ndarray                # (J,)
    settings: dict = field(default_factory=dict)
    radius_90: np.ndarray | None = None   # (J,)
    calibration: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        """Errors in mm: the aggregate's MPJPE, the ORACLE best-of-H MPJPE (uses the ground
        truth; not an estimate), and the mean per-joint spread."""
        out = {"index": self.index, "label": self.label, "mean_spread_mm": float(self.spread.mean() * 1000)}
        if self.gt is not None:
            out["aggregate_mpjpe_mm"] = float(mpjpe(self.aggregate[None], self.gt[None])[0] * 1000)
            per_hyp = mpjpe(self.hypotheses, np.broadcast_to(self.gt, self.hypotheses.shape))
            out["oracle_best_of_h_mpjpe_mm"] = float(per_hyp.min() * 1000)
        return out


def explore_sample(lifter: Lifter, data, index: int, *, num_hypotheses: int = 5, sampler: str = "ddim",
                   num_steps: int = 5, seed: int = 0, flip: bool = False, aggregate: str = "mean",
                   calibrated: bool = True) -> HypothesisResult:
    """Run the sampler on sample `index` of a PreparedData and collect everything the explorer
    shows (a windowed model reads the sample's 2D window from `data`). The aggregate never looks
    at the ground truth. With `calibrated` the hypotheses are calibrated about it when the model
    has a calibration for the data's 2D source (`Lifter.calibrate`; the trajectory stays raw)."""
    kp = np.asarray(data.keypoints_2d[index], dtype=np.float32)
    condition = np.asarray(sample_windows(data, [index], lifter.window)[0], dtype=np.float32)
    hyps, trajectory = sample_hypotheses(lifter, condition, num_hypotheses=num_hypotheses, sampler=sampler,
                                         num_steps=num_steps, seed=seed, flip=flip)
    intrinsics = np.asarray(data.intrinsics[index], dtype=np.float64)
    agg = lifter.aggregate(hyps[None], aggregate, keypoints_2d=kp[None],
                           intrinsics=None if np.isnan(intrinsics).any() else intrinsics[None])[0]
    settings = SamplingSettings(aggregate=aggregate, calibrated=bool(calibrated))
    source = input_source_of(data, "file")
    hyps = lifter.calibrate(hyps[None], agg[None], settings, source)[0]
    return HypothesisResult(
        index=int(index), label=sample_label(data, index), keypoints_2d=kp,
        gt=np.asarray(data.poses_3d[index], dtype=np.float64), hypotheses=hyps, trajectory=trajectory,
        aggregate=np.asarray(agg, dtype=np.float64), spread=hypothesis_spread(hyps[None])[0],
        settings=dict(num_hypotheses=int(num_hypotheses), sampler=sampler, num_steps=int(num_steps),
                      seed=int(seed), flip=bool(flip), aggregate=aggregate),
        radius_90=lifter.radii(hyps[None], settings, 0.9, source)[0],
        calibration=lifter.calibration_card(settings, source),
    )


def result_figures(result: HypothesisResult, skeleton: Skeleton) -> dict:
    """The explorer's plotly figures for one result: `input_2d`, `hypotheses_3d` (with ground
    truth and aggregate), `spread`, `trajectory` (slider over denoising steps)."""
    return {
        "input_2d": pose_2d_figure(result.keypoints_2d, skeleton, title=f"2D input: {result.label}"),
        "hypotheses_3d": hypotheses_3d_figure(result.hypotheses, skeleton, gt=result.gt,
                                              aggregate=result.aggregate,
                                              title=f"{result.hypotheses.shape[0]} hypotheses: {result.label}"),
        "spread": result_spread_figure(result, skeleton),
        "trajectory": trajectory_figure(result.trajectory, skeleton, gt=result.gt),
    }


def result_spread_figure(result: HypothesisResult, skeleton: Skeleton):
    """The per-joint spread of a result with its 90 % radius per joint (calibrated or not, as the
    legend says)."""
    label = "90 % radius (" + ("calibrated" if result.calibration.get("calibrated") else "raw, not calibrated") + ")"
    return spread_figure(result.spread, skeleton, radius=result.radius_90, radius_label=label)
