"""DiffuPose workbench: diffusion-based multi-hypothesis 3D human pose lifting.

`diffupose.lift(keypoints, run, ...)` lifts a detector's keypoint file (`diffupose.lifting`);
the package layout is in docs/architecture.md.
"""

__version__ = "0.1.0"

__all__ = ["lift", "__version__"]


def __getattr__(name):
    # `diffupose.lift` on first use: `import diffupose` stays light (no plotly, no model code).
    if name == "lift":
        from .lifting import lift
        return lift
    raise AttributeError(f"module 'diffupose' has no attribute {name!r}")
