"""The model: the modulated-GCN denoiser (paper, `denoiser` and `gcn`), the U-Net baseline (Table IV,
`unet`), the 2D condition both read (`condition`), missing-joint masks and 2D noise (`masking`),
safetensors checkpoints (`checkpoint`) and the EMA of the weights (`ema`)."""
from .denoiser import GCNDenoiser, build_denoiser, count_parameters
from .gcn import ModulatedGraphConv, modulated_affinity
from .unet import UNetDenoiser

__all__ = ["GCNDenoiser", "UNetDenoiser", "ModulatedGraphConv", "modulated_affinity", "build_denoiser",
           "count_parameters"]
