"""DiffuPose workbench: diffusion-based multi-hypothesis 3D human pose lifting."""

__version__ = "0.1.0"
