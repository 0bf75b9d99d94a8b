"""benchmarks/released_speed.py: skips in one line without the released code, and with a stand-in
of its interface drives the released sampler for N x 2 (flip) chains of T passes each."""
from __future__ import annotations

import sys
import textwrap

import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The released interface the benchmark uses (model.modulated_gcn.ModulatedGCN, model.diffusion.Diffusion),
# with a counter of network passes and rows; no code of the released project.
FAKE_GCN = """
import torch

class ModulatedGCN(torch.nn.Module):
    calls = []

    def __init__(self, adj, hid_dim, coords_dim=(5, 5), num_layers=4, nodes_group=None, p_dropout=None):
        super().__init__()
        assert adj.shape == (17, 17)
        self.lin = torch.nn.Linear(5, 5)

    def forward(self, x, cond, time):
        ModulatedGCN.calls.append(x.shape[0])
        return self.lin(torch.cat((x, cond), -1))
"""
FAKE_DIFFUSION = """
import torch

class Diffusion(torch.nn.Module):
    def __init__(self, denoise_fn, *, n_frame, n_joint, timesteps=1000, loss_type="l1", **kw):
        super().__init__()
        self.denoise_fn, self.n_frame, self.n_joint, self.T = denoise_fn, n_frame, n_joint, timesteps

    def sample(self, cond, batch_size=16):
        x = torch.randn(batch_size, self.n_frame, self.n_joint, 3)
        for i in reversed(range(self.T)):
            x = self.denoise_fn(x, cond, torch.full((batch_size,), i))[..., :3]
        return x
"""


@pytest.fixture
def released_speed(benchmark_script):
    """The benchmark module; the stand-in's top-level "model" package is forgotten afterwards."""
    assert "model" not in sys.modules
    yield benchmark_script("released_speed")
    for name in [m for m in sys.modules if m == "model" or m.startswith("model.")]:
        del sys.modules[name]


def _write_stand_in(folder):
    """A stand-in of the released interface under folder/model."""
    (folder / "model").mkdir()
    (folder / "model" / "__init__.py").write_text("")
    (folder / "model" / "modulated_gcn.py").write_text(textwrap.dedent(FAKE_GCN))
    (folder / "model" / "diffusion.py").write_text(textwrap.dedent(FAKE_DIFFUSION))


def _run(module, monkeypatch, capsys, *argv):
    monkeypatch.setattr(sys, "argv", ["released_speed.py", *argv])
    module.main()
    return capsys.readouterr().out


def test_skips_in_one_line_without_the_released_code(released_speed, monkeypatch, capsys, tmp_path):
    out = _run(released_speed, monkeypatch, capsys, "--released", str(tmp_path / "nowhere"))
    assert out.strip().splitlines() == [f"skipped: released code not found: {tmp_path / 'nowhere'}/model/diffusion.py "
                                        f"does not exist"]


def test_skips_when_the_released_code_does_not_import(released_speed, monkeypatch, capsys, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "diffusion.py").write_text("import a_module_that_is_not_installed\n")
    (tmp_path / "model" / "modulated_gcn.py").write_text("")
    out = _run(released_speed, monkeypatch, capsys, "--released", str(tmp_path))
    assert out.startswith("skipped: released code at") and "does not import here" in out


def test_times_both_samplers_with_the_same_inputs(released_speed, monkeypatch, capsys, tmp_path):
    _write_stand_in(tmp_path)
    out = _run(released_speed, monkeypatch, capsys, "--released", str(tmp_path), "--model", "h36m",
               "--poses", "6", "--hypotheses", "2", "--steps", "2", "--released-steps", "3", "--batch", "4")
    calls = sys.modules["model.modulated_gcn"].ModulatedGCN.calls
    # 6 poses in batches of 4 and 2, each with 2 hypotheses x 2 (flip) chains, 3 passes per chain
    assert calls == [16] * 3 + [8] * 3
    lines = out.splitlines()
    assert any(line.startswith("| released | DDPM | 3 |") for line in lines)
    assert any(line.startswith("| workbench | ddpm ddim | 2 |") for line in lines)
    assert "x poses/s" in lines[-1] and "per network pass" in lines[-1]


def test_the_workbench_side_uses_the_model_own_sampler(released_speed, monkeypatch, capsys, tmp_path):
    _write_stand_in(tmp_path)
    out = _run(released_speed, monkeypatch, capsys, "--released", str(tmp_path), "--model", "h36m-det-fast",
               "--poses", "2", "--hypotheses", "2", "--released-steps", "2", "--batch", "2")
    # the distilled zoo model samples with DDIM at 1 evaluation per chain unless told otherwise
    assert any(line.startswith("| workbench | ddpm ddim | 1 |") for line in out.splitlines())


def test_released_code_that_parses_argv_at_import_still_loads(released_speed, monkeypatch, capsys, tmp_path):
    # the complete released code parses sys.argv in common/arguments.py when it is imported: the
    # benchmark's own flags ("--model h36m") must not reach that parser
    _write_stand_in(tmp_path)
    gcn = tmp_path / "model" / "modulated_gcn.py"
    gcn.write_text("import argparse\n_p = argparse.ArgumentParser()\n_p.add_argument('-dim', '--model-dim', type=int, "
                   "default=5)\nARGS = _p.parse_args()\n" + gcn.read_text())
    out = _run(released_speed, monkeypatch, capsys, "--released", str(tmp_path), "--model", "h36m",
               "--poses", "2", "--hypotheses", "2", "--steps", "2", "--released-steps", "2", "--batch", "2")
    assert any(line.startswith("| released | DDPM | 2 |") for line in out.splitlines()), out
    assert sys.argv[1:3] == ["--released", str(tmp_path)]          # restored afterwards
