"""FMANet's issue-16 switches: input normalisation (fitted on training rows only), the grid head,
cross-attention fusion. Each builds, runs forward and backward at 28 and 64 px, and trains a tiny set
to a lower loss; the normalisation and the fusion have known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bench.training.engine import TrainConfig, fit
from models import create_model
from models.fmanet import FMANet

# every new switch value, each on top of the defaults; plus the pre-issue-16 reconstruction
SWITCHES = {
    "input_norm=none": {"input_norm": "none"},
    "input_norm=scale": {"input_norm": "scale"},
    "input_norm=standard": {"input_norm": "standard"},
    "head=gap": {"head": "gap"},
    "head=grid": {"head": "grid"},
    "head=grid,head_grid=2": {"head": "grid", "head_grid": 2},
    "fusion=cross_attention": {"fusion": "cross_attention"},
    "cross_attention,se,shared": {"fusion": "cross_attention", "modulation": "se", "shared_weights": True},
    "single_stream": {"streams": "onset_apex"},
    "modulation=se": {"modulation": "se"},
    "modulation=spatial": {"modulation": "spatial"},
    "old_reconstruction": {"input_norm": "none", "head": "gap", "widths": [16, 32, 64], "modulation": "spatial"},
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: extra intra-op threads only contend for the cores (a test went from 0.2 s to 15 s)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _make(in_chans=6, **kw) -> FMANet:
    torch.manual_seed(0)
    return create_model("fmanet", in_chans, 3, **kw)


def _tiny_set(n=24, size=16, seed=0):
    """Class c moves in its own image region (like the synthetic data's region motions), sub-pixel."""
    g = torch.Generator().manual_seed(seed)
    x = 0.05 * torch.randn(n, 6, size, size, generator=g)
    y = torch.arange(n) % 3
    h = size // 3
    for i in range(n):
        r = slice(int(y[i]) * h, int(y[i]) * h + h)
        x[i, [0, 3], r, :] += 0.4  # u of both phases
        x[i, [2, 5], r, :] += 0.4  # magnitudes
    return x, y


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("name", list(SWITCHES))
def test_switch_builds_forward_backward(name, size):
    m = _make(**SWITCHES[name]).train()
    x = torch.randn(6, 6, size, size)
    m.fit_input_stats(x)
    logits, aux = m(x, return_aux=True)
    assert logits.shape == (6, 3)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
    if SWITCHES[name].get("fusion") == "cross_attention":
        w = aux["fusion_weights"]
        assert w.shape == (6, 2) and torch.allclose(w.sum(1), torch.ones(6))


@pytest.mark.parametrize("name", list(SWITCHES))
def test_switch_trains_a_tiny_set_to_a_lower_loss(name):
    x, y = _tiny_set()
    m = _make(**SWITCHES[name])
    m.fit_input_stats(x)
    res = fit(m, x, y, TrainConfig(epochs=10, batch_size=12, lr=3e-3, seed=0, weight_decay=0.0))
    first, last = res.history[0]["train_loss"], res.history[-1]["train_loss"]
    assert last < 0.7 * first, (first, last)


def test_input_norm_statistics_known_answer():
    x = torch.zeros(2, 6, 2, 2)
    x[0, 0] = 1.0
    x[1, 0] = 3.0  # channel 0: values 1,1,1,1,3,3,3,3 -> mean 2, sd 1, rms sqrt(5)
    x[:, 1] = -2.0  # constant: sd 0 -> scale 1 under standard; rms 2 under scale
    std, scl, off = _make(input_norm="standard"), _make(input_norm="scale"), _make(input_norm="none")
    for m in (std, scl, off):
        m.fit_input_stats(x)
    assert torch.allclose(std.input_shift[:2], torch.tensor([2.0, -2.0]))
    assert torch.allclose(std.input_scale[:2], torch.tensor([1.0, 1.0]))  # sd 1; the constant channel keeps 1
    assert torch.allclose(scl.input_shift, torch.zeros(6))
    assert torch.allclose(scl.input_scale[:2], torch.tensor([5 ** -0.5, 0.5]))
    assert torch.allclose(scl.input_scale[2:], torch.ones(4))  # all-zero channels: scale 1, never 1/0
    assert torch.equal(off.input_scale, torch.ones(6)) and not off.input_stats_fitted
    # the normalised model is the plain model on (x - mean) / sd
    plain = _make(input_norm="none").eval()
    std.eval().load_state_dict(plain.state_dict(), strict=False)
    std.fit_input_stats(x)
    z = torch.randn(3, 6, 28, 28)
    manual = (z - std.input_shift[None, :, None, None]) * std.input_scale[None, :, None, None]
    with torch.no_grad():
        assert torch.allclose(std(z), plain(manual), atol=1e-5)
    with pytest.raises(ValueError, match="fit_input_stats"):
        std.fit_input_stats(torch.zeros(2, 3, 4, 4))


def test_input_stats_travel_with_the_state_dict():
    a = _make(input_norm="scale")
    a.fit_input_stats(torch.randn(4, 6, 8, 8) * 3)
    b = _make(input_norm="scale")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.input_scale, b.input_scale)


def test_grid_head_of_one_cell_is_the_gap_head():
    gap, grid1 = _make(head="gap").eval(), _make(head="grid", head_grid=1).eval()
    grid1.load_state_dict(gap.state_dict())
    x = torch.randn(2, 6, 28, 28)
    with torch.no_grad():
        assert torch.allclose(gap(x), grid1(x))
    grid3 = _make(head="grid", head_grid=3, widths=[16, 32, 64])
    assert grid3.classifier.in_features == 64 * 9


def test_cross_attention_with_zero_output_projection_is_attention_fusion():
    """W_o = 0 -> F_i' = F_i, so cross_attention reduces to the per-sample attention fusion."""
    xa = _make(fusion="cross_attention").eval()
    at = _make(fusion="attention").eval()
    state = {k: v for k, v in xa.state_dict().items() if not k.startswith("fuse.")}
    state.update({k.replace("fuse.weights.", "fuse."): v for k, v in xa.state_dict().items()
                  if k.startswith("fuse.weights.")})
    at.load_state_dict(state)
    with torch.no_grad():
        xa.fuse.o.weight.zero_()
        x = torch.randn(3, 6, 28, 28)
        la, aux_a = xa(x, return_aux=True)
        lb, aux_b = at(x, return_aux=True)
    assert torch.allclose(la, lb, atol=1e-5)
    assert torch.allclose(aux_a["fusion_weights"], aux_b["fusion_weights"], atol=1e-6)


@pytest.mark.parametrize("bad, match", [({"input_norm": "zscore"}, "input_norm"), ({"head": "flat"}, "head"),
                                        ({"head": "grid", "head_grid": 0}, "head_grid"),
                                        ({"fusion": "xattn"}, "fusion")])
def test_bad_new_switch_values_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        _make(**bad)


def test_yaml_defaults_match_the_constructor():
    """bench/conf/model/fmanet.yaml and FMANet's signature agree, except the documented differences:
    the suite's modulation is ``se`` (chosen on validation subjects), the constructor's ``spatial``; the
    suite's streams ``auto`` (every study gets FMANet's single-phase baseline), the constructor's ``both``."""
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    node = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[2] / "bench/conf/model/fmanet.yaml"))
    sig = inspect.signature(FMANet.__init__).parameters
    assert node.pop("modulation") == "se" and sig["modulation"].default == "spatial"
    assert node.pop("streams") == "auto" and sig["streams"].default == "both"
    for k, v in node.items():
        d = sig[k].default
        assert (list(d) if isinstance(d, tuple) else d or {} if k == "backbone_params" else d) == v, k


def test_fold_fits_input_stats_on_the_training_rows_only(tmp_path, monkeypatch):
    """Spy: the rows reaching fit_input_stats are exactly the fold's fit rows (no test, no validation)."""
    from bench.training.units import UnitTask, run_unit

    n_sub, per = 6, 6
    n = n_sub * per
    # each sample is constant and equal to its own index, so the spy reads which rows it was given;
    # the test subject's rows are huge, so a leak would also show in the fitted scale
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 6, 12, 12)).copy()
    subjects = np.repeat([f"s{i}" for i in range(n_sub)], per)
    test = np.where(subjects == "s2")[0]
    x[test] += 1000.0
    seen: list[set] = []
    real = FMANet.fit_input_stats

    def spy(self, xt):
        seen.append(set(torch.as_tensor(xt)[:, 0, 0, 0].round().int().tolist()))
        real(self, xt)
        seen.append(float(1.0 / self.input_scale[0]))

    monkeypatch.setattr(FMANet, "fit_input_stats", spy)
    for validation in ({"mode": "none"}, {"mode": "subjects", "val_fraction": 0.25}):
        seen.clear()
        cfg = {"model": {"name": "fmanet", "input_norm": "scale"}, "trainer": {"epochs": 1, "batch_size": 8},
               "protocol": {"name": "loso", "validation": validation}, "tuning": {"n_trials": 0},
               "representation": {"name": "two_phase_stack"}}
        task = UnitTask(study="t", labels={"dataset": "d", "flow": "f", "representation": "r", "model": "m"},
                        names={"representation": "two_phase_stack", "model": "fmanet"}, seed=0, fold="s2",
                        train_idx=np.where(subjects != "s2")[0], test_idx=test, x=x,
                        y=np.tile(np.arange(3), n // 3).astype(np.int64), subjects=subjects,
                        clips=np.array([f"c{i}" for i in range(n)]), source_datasets=np.array(["d"] * n),
                        channels=("u1", "v1", "m1", "u2", "v2", "m2"), n_classes=3, cell_cfg=cfg,
                        cell_hash="h", unit_key="k", run_dir=str(tmp_path))
        rec = run_unit(task)
        assert rec["row"]["status"] == "ok", rec["row"]["error"]
        rows, rms = seen
        n_val = rec["row"]["n_val"]
        assert rows.isdisjoint(set(test.tolist())) and len(rows) == len(task.train_idx) - n_val
        assert (n_val > 0) == (validation["mode"] == "subjects")
        # hand answer: the RMS of the fit rows' constant values
        assert rms == pytest.approx(float(np.sqrt(np.mean(np.square(sorted(rows))))), rel=1e-5)
