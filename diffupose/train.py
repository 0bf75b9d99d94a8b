"""The old home of the training loop, kept so `from diffupose.train import train` keeps working:
everything lives in `diffupose.training` (loop, run directory, state, data, optim, distributed,
progress), whose public names are re-exported here."""
from .training import (HISTORY_FILE, HISTORY_KEYS, LR_SCHEDULES, RESUMABLE_CHANGES, RUN_CARD_FILE, TrainingData,
                       TrainingDiverged, TrainResult, amp_dtype, build_lr_scheduler, cpu_has_native_bf16,
                       data_identity, epoch_indices, load_training_data, lr_factor, read_history, train, validate)

__all__ = ["TrainResult", "TrainingDiverged", "train", "validate", "read_history", "lr_factor",
           "build_lr_scheduler", "epoch_indices", "amp_dtype", "cpu_has_native_bf16", "data_identity",
           "load_training_data", "TrainingData", "LR_SCHEDULES", "HISTORY_FILE", "HISTORY_KEYS", "RUN_CARD_FILE",
           "RESUMABLE_CHANGES"]
