"""Denoisers: the modulated-GCN denoiser (paper) and the U-Net baseline (Table IV)."""
from .denoiser import GCNDenoiser, build_denoiser, count_parameters
from .gcn import ModulatedGraphConv, modulated_affinity
from .unet import UNetDenoiser

__all__ = ["GCNDenoiser", "UNetDenoiser", "ModulatedGraphConv", "modulated_affinity", "build_denoiser",
           "count_parameters"]
