"""Training: single process or torchrun DDP, EMA, AMP, exact resume — one module per job.

- `loop`: `train` (read it top to bottom), the optimiser step, `validate`, `TrainResult`;
- `run_dir`: start, resume or refuse a run directory; config, history and `run_card.json`;
- `state`: everything one call works with (`RunState`): built seeded, restored, saved;
- `data`: the training tensors, the epoch shuffle, the data file's identity, the step budget;
- `optim`: mixed precision, the learning-rate schedule, the torch.compile decision;
- `distributed`: torchrun ranks and the RNG streams saved with checkpoints;
- `progress`: the tqdm bar and the periodic `diffupose.train` log line.

Everything random comes from explicit generators:

- model initialisation: `torch.manual_seed(cfg.train.seed)` inside a forked RNG;
- the shuffle of epoch e: a CPU generator seeded from (`cfg.train.seed`, e) (so the position
  inside an epoch is recovered from the step count alone);
- noise and timesteps of the loss: one device generator per rank, saved in checkpoints;
- validation: a fresh generator with a fixed seed each time (the curve is not noisier than
  the model).

So a run stopped after k steps and resumed is bit-identical to an uninterrupted one (CPU),
and the same seed gives the same weights. A non-finite loss stops training with
`TrainingDiverged`; no checkpoint is written after it. Every module logs as `diffupose.train`
(the logger reports relay). This package exports the public names.
"""
from ..config import LR_SCHEDULES
from .data import TrainingData, data_identity, epoch_indices, load_training_data
from .loop import TrainingDiverged, TrainResult, train, validate
from .optim import amp_dtype, build_lr_scheduler, cpu_has_native_bf16, lr_factor
from .progress import PROGRESS_EVERY_S
from .run_dir import HISTORY_FILE, HISTORY_KEYS, RESUMABLE_CHANGES, RUN_CARD_FILE, read_history

__all__ = ["TrainResult", "TrainingDiverged", "train", "validate", "read_history", "lr_factor",
           "build_lr_scheduler", "epoch_indices", "amp_dtype", "cpu_has_native_bf16", "data_identity",
           "load_training_data", "TrainingData", "LR_SCHEDULES", "HISTORY_FILE", "HISTORY_KEYS", "RUN_CARD_FILE",
           "RESUMABLE_CHANGES", "PROGRESS_EVERY_S"]
