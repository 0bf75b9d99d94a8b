"""DiffuPose workbench: diffusion-based multi-hypothesis 3D human pose lifting."""

__version__ = "0.1.0"

# `diffupose.lift(keypoints, run, ...)`: in-the-wild lifting (the function shadows its module
# name on the package; `from diffupose.lift import LiftResult` still works).
from .lift import lift  # noqa: E402

__all__ = ["lift", "__version__"]
