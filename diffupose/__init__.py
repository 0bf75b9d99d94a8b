"""DiffuPose workbench: diffusion-based multi-hypothesis 3D human pose lifting.

    from diffupose import Lifter
    lifter = Lifter.from_pretrained("h36m-det")          # a shipped model (`diffupose models`) or a run folder
    result = lifter.lift(keypoints, layout="coco17", image_size=(1000, 1002))   # array, file or Keypoints

`diffupose.lift(keypoints, "h36m-det", ...)` does the same in one call (`diffupose.lifting`);
docs/api.md is the reference, docs/architecture.md the package layout.
"""

__version__ = "0.1.0"

__all__ = ["Lifter", "lift", "__version__"]


def __getattr__(name):
    # `diffupose.lift` / `diffupose.Lifter` on first use: `import diffupose` stays light (no plotly, no model code).
    if name == "lift":
        from .lifting import lift
        return lift
    if name == "Lifter":
        from .lifting import Lifter
        return Lifter
    raise AttributeError(f"module 'diffupose' has no attribute {name!r}")
