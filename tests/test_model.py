"""Model tests: modulated graph conv (eq. 7), GCN denoiser, U-Net baseline."""
import pytest
import torch

from diffupose.config import ModelConfig
from diffupose.errors import ConfigError
from diffupose.model import ModulatedGraphConv, build_denoiser, count_parameters
from diffupose.model.gcn import NonLocalBlock
from diffupose.geometry.skeleton import H36M17, HUMANEVA15

J = H36M17.num_joints


def test_graph_conv_matches_released_formula():
    torch.manual_seed(0)
    conv = ModulatedGraphConv(6, 8, H36M17.normalized_adjacency())
    with torch.no_grad():
        conv.Q.normal_(0, 0.3)
    x = torch.randn(4, J, 6)
    fast = conv(x.transpose(0, 1).contiguous()).transpose(0, 1)
    assert torch.allclose(fast, conv.forward_reference(x), atol=1e-5)


def test_graph_conv_init():
    conv = ModulatedGraphConv(64, 32, H36M17.normalized_adjacency())
    assert conv.W.shape == (2, 64, 32) and conv.M.shape == (J, 32) and conv.Q.shape == (J, J)
    assert torch.all(conv.Q == 1e-6)
    assert conv.bias.abs().max() <= 1 / 32 ** 0.5
    # torch xavier fans of a (2, 64, 32) tensor: fan_in = 64*32, fan_out = 2*32 (as released)
    bound = 1.414 * (6 / (64 * 32 + 2 * 32)) ** 0.5 * 1.0001
    assert conv.W.abs().max() <= bound


def test_affinity_symmetric_and_learned():
    conv = ModulatedGraphConv(3, 4, H36M17.normalized_adjacency())
    a0 = conv.modulated_affinity()
    adj = torch.as_tensor(H36M17.normalized_adjacency())
    assert torch.allclose(a0, (adj + adj.T) / 2 + 1e-6, atol=1e-7)
    with torch.no_grad():
        conv.Q.copy_(torch.randn(J, J))
    a = conv.modulated_affinity()
    assert torch.allclose(a, a.T)
    assert not torch.allclose(a, a0)
    assert not a.requires_grad
    # gradient reaches Q, including non-edges
    conv(torch.randn(J, 5, 3)).square().sum().backward()
    assert conv.Q.grad is not None and conv.Q.grad[0, 16].abs() > 0


@pytest.mark.parametrize("dim,unused,expected", [
    (256, True, 1_453_860), (384, True, 3_226_852), (256, False, 1_387_812), (384, False, 3_078_628)])
def test_parameter_counts_match_release(dim, unused, expected):
    model = build_denoiser(ModelConfig(dim=dim, released_unused_film=unused), H36M17)
    n = count_parameters(model)
    assert n == expected
    if unused:
        paper = {256: 1.45e6, 384: 3.22e6}[dim]
        assert abs(n - paper) / paper < 0.05


def test_unet_parameter_count_near_paper():
    model = build_denoiser(ModelConfig(denoiser="unet", dim=256), H36M17)
    n = count_parameters(model)
    assert abs(n - 2.99e6) / 2.99e6 < 0.10


@pytest.mark.parametrize("kind", ["gcn", "unet"])
@pytest.mark.parametrize("skeleton", [H36M17, HUMANEVA15])
def test_denoiser_shapes_and_backward(kind, skeleton):
    model = build_denoiser(ModelConfig(denoiser=kind, dim=32, num_blocks=1), skeleton)
    B, Jn = 5, skeleton.num_joints
    x, y, t = torch.randn(B, Jn, 3), torch.randn(B, Jn, 2), torch.randint(0, 100, (B,))
    eps, y_hat = model(x, y, t)
    assert eps.shape == (B, Jn, 3) and y_hat.shape == (B, Jn, 2)
    (eps.square().mean() + y_hat.square().mean()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad and "film3" not in str(p))


def test_denoiser_depends_on_time_and_condition():
    torch.manual_seed(0)
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1), H36M17).eval()
    x, y = torch.randn(3, J, 3), torch.randn(3, J, 2)
    t = torch.tensor([1, 1, 1])
    e1, _ = model(x, y, t)
    e2, _ = model(x, y, t + 50)
    e3, _ = model(x, y + 1, t)
    assert not torch.allclose(e1, e2) and not torch.allclose(e1, e3)
    # rows are independent in eval mode
    e4, _ = model(x[:1], y[:1], t[:1])
    assert torch.allclose(e1[:1], e4, atol=1e-5)


def test_affinities_and_layer_names():
    model = build_denoiser(ModelConfig(dim=32, num_blocks=2), H36M17)
    names, affs = model.layer_names(), model.modulated_affinities()
    assert len(names) == len(affs) == 1 + 2 * 2 + 1
    assert names[0].startswith("input_block") and names[-1] == "output_conv"
    assert all(a.shape == (J, J) and torch.allclose(a, a.T) for a in affs)


def test_nonlocal_starts_as_identity():
    block = NonLocalBlock(16)
    h = torch.randn(J, 4, 16)
    assert torch.allclose(block(h), h)


def test_unknown_denoiser():
    with pytest.raises(ConfigError):
        build_denoiser(ModelConfig(denoiser="transformer"), H36M17)


def test_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1), H36M17).eval()
    x, y, t = torch.randn(8, J, 3), torch.randn(8, J, 2), torch.randint(0, 100, (8,))
    e32, _ = model(x, y, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        e16, _ = model(x, y, t)
    assert (e16.float() - e32).abs().max() < 0.1 * e32.abs().max()


def test_inference_bn_folding_matches_eval_forward():
    torch.manual_seed(0)
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1), H36M17)
    x, y, t = torch.randn(64, J, 3), torch.randn(64, J, 2), torch.randint(0, 100, (64,))
    for _ in range(3):  # move the BN running statistics away from their init
        model(x, y, t)
    model.eval()
    with torch.no_grad():
        folded, _ = model(x, y, t)
    plain, _ = model(x, y, t)  # grad enabled: no folding
    assert torch.allclose(folded, plain, atol=1e-4)


# ---------------------------------------------------------------- missing joints (model.missing_joints)

def _mask(rows: int, missing: list[int]) -> torch.Tensor:
    mask = torch.ones(rows, J, dtype=torch.bool)
    mask[:, missing] = False
    return mask


@pytest.mark.parametrize("kind", ["gcn", "unet"])
def test_missing_joints_off_is_the_released_network(kind):
    """Default: same parameter count as before; a mask of all-present joints changes nothing."""
    torch.manual_seed(0)
    plain = build_denoiser(ModelConfig(denoiser=kind, dim=32, num_blocks=1), H36M17).eval()
    with_flag = build_denoiser(ModelConfig(denoiser=kind, dim=32, num_blocks=1, missing_joints=True), H36M17)
    first_in = {"gcn": 2 * 32, "unet": 3 * 16}[kind]  # one more input row of the first layer
    assert count_parameters(with_flag) == count_parameters(plain) + first_in
    x, y, t = torch.randn(4, J, 3), torch.randn(4, J, 2), torch.randint(0, 100, (4,))
    assert torch.equal(plain(x, y, t)[0], plain(x, y, t, keypoint_mask=_mask(4, []))[0])


def test_parameter_count_default_unchanged_by_the_flag():
    assert ModelConfig().missing_joints is False
    assert count_parameters(build_denoiser(ModelConfig(dim=256), H36M17)) == 1_387_812


@pytest.mark.parametrize("kind", ["gcn", "unet"])
def test_missing_joints_without_support_raise(kind):
    model = build_denoiser(ModelConfig(denoiser=kind, dim=32, num_blocks=1), H36M17)
    x, y, t = torch.randn(2, J, 3), torch.randn(2, J, 2), torch.randint(0, 100, (2,))
    with pytest.raises(ConfigError, match="missing_joints"):
        model(x, y, t, keypoint_mask=_mask(2, [13]))


@pytest.mark.parametrize("kind", ["gcn", "unet"])
def test_missing_joint_input_is_ignored_and_the_mask_is_seen(kind):
    torch.manual_seed(0)
    model = build_denoiser(ModelConfig(denoiser=kind, dim=32, num_blocks=1, missing_joints=True), H36M17).eval()
    x, y, t = torch.randn(3, J, 3), torch.randn(3, J, 2), torch.randint(0, 100, (3,))
    mask = _mask(3, [3, 13])
    e_none, _ = model(x, y, t)
    assert torch.equal(e_none, model(x, y, t, keypoint_mask=_mask(3, []))[0])
    e1, _ = model(x, y, t, keypoint_mask=mask)
    y_other = y.clone()
    y_other[:, [3, 13]] = float("nan")  # what a missing joint's 2D may hold
    e2, _ = model(x, y_other, t, keypoint_mask=mask)
    assert torch.isfinite(e2).all() and torch.allclose(e1, e2)
    assert not torch.allclose(e1, e_none)
    with pytest.raises(ValueError, match="keypoint_mask"):
        model(x, y, t, keypoint_mask=torch.ones(3, J - 1, dtype=torch.bool))


def test_missing_joint_mask_gets_gradient():
    model = build_denoiser(ModelConfig(dim=32, num_blocks=1, missing_joints=True), H36M17)
    x, y, t = torch.randn(8, J, 3), torch.randn(8, J, 2), torch.randint(0, 100, (8,))
    eps, _ = model(x, y, t, keypoint_mask=_mask(8, [6]))
    eps.square().mean().backward()
    w = model.input_block.gconv.W.grad
    assert w.shape[1] == 6 and w[:, 5].abs().sum() > 0   # the missing-indicator row learns
