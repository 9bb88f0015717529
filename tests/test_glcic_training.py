"""`fastinpaint train --model glcic`: phases, MSE goes down, exact resume, model.pt, DDP, validation, AMP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fastinpaint.nn.glcic import GLCIC
from fastinpaint.training import train
from fastinpaint.training.glcic_run import glcic_phase

SIZE = 32


# Tiny tensors: extra threads only add overhead (and noise) on a shared machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(image_dir, out, **kw):
    cfg = dict(model="glcic", images=str(image_dir), out_dir=str(out), size=SIZE, batch_size=2, steps=6,
               lr=1e-3, seed=1, num_workers=0, checkpoint_every=100, log_every=1, progress=False,
               buckets="0.1-0.3", glcic_completion_steps=2, glcic_discriminator_steps=2, glcic_alpha=0.1,
               model_options={"width": 4, "local_size": 16, "disc_width": 4, "disc_features": 8})
    cfg.update(kw)
    return cfg


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_phase_schedule():
    assert [glcic_phase(s, 2, 3) for s in range(7)] == ["completion"] * 2 + ["discriminator"] * 3 + ["joint"] * 2
    assert glcic_phase(0, 0, 0) == "joint"


def test_all_phases_reached_and_logged(image_dir, tmp_path):
    out = tmp_path / "run"
    result = train(_cfg(image_dir, out))
    assert result["step"] == 6 and result["phase"] == "joint"
    lines = _log(out)
    assert [r["step"] for r in lines] == list(range(1, 7))
    assert [r["phase"] for r in lines] == ["completion"] * 2 + ["discriminator"] * 2 + ["joint"] * 2
    assert set(lines[0]) >= {"loss/mse", "steps_per_s", "time"}
    assert set(lines[2]) >= {"loss/d", "loss/d_real", "loss/d_fake"} and "loss/mse" not in lines[2]
    assert set(lines[-1]) >= {"loss/mse", "loss/adv", "loss/total", "loss/d"}
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["step"] == 6
    assert {"completion", "discriminator", "opt_c", "opt_d", "rng", "sampler"} <= set(ckpt)


def test_completion_phase_lowers_mse(image_dir, tmp_path):
    out = tmp_path / "mse"
    # averaged over the first and last three steps (batches differ from step to step)
    train(_cfg(image_dir, out, steps=12, glcic_completion_steps=12, lr=3e-3, batch_size=4, hflip=False))
    mse = [r["loss/mse"] for r in _log(out)]
    assert all(r == "completion" for r in (x["phase"] for x in _log(out)))
    assert np.mean(mse[-3:]) < np.mean(mse[:3])


def test_resume_equals_uninterrupted(image_dir, tmp_path):
    full = train(_cfg(image_dir, tmp_path / "full", steps=7))
    out = tmp_path / "split"
    train(_cfg(image_dir, out, steps=3, checkpoint_every=3))  # "interrupted" in the discriminator phase
    resumed = train(_cfg(image_dir, out, steps=7, resume=True))
    assert resumed["step"] == 7
    for name in ("completion", "discriminator"):
        a, b = full[name].state_dict(), resumed[name].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}.{k} differs after resume"


def test_model_pt_loads(image_dir, tmp_path):
    out = tmp_path / "m"
    result = train(_cfg(image_dir, out, steps=2, glcic_completion_steps=1, glcic_discriminator_steps=0))
    net = GLCIC.load(out / "model.pt")
    assert net.width == 4
    x = torch.rand(1, 3, SIZE, SIZE)
    hole = torch.zeros(1, 1, SIZE, SIZE)
    hole[..., 8:20, 8:20] = 1
    result["completion"].eval()
    with torch.no_grad():
        assert torch.equal(net(x, hole), result["completion"](x, hole))


def _ddp_worker(rank, image_dir, out, steps):
    torch.set_default_dtype(torch.float64)
    # stopped in the discriminator phase, then resumed in a new trainer: DDP resume is covered too
    train(_cfg(image_dir, out, batch_size=4, steps=3))
    train(_cfg(image_dir, out, batch_size=4, steps=steps, resume=True))


def test_ddp_two_processes_match_one_process(image_dir, tmp_path, run_ddp):
    """2 gloo processes x 2 samples == 1 process x 4, through all three phases: both networks,
    BatchNorm statistics included (BatchNorm runs over the global batch).

    In float64: the gradients agree to rounding, but Adam divides each by its running RMS, which
    for the weights a BatchNorm follows (their loss is scale-invariant, so some gradients are
    almost 0) turns float32 rounding into differences of a sizeable fraction of a step.
    """
    steps = 6
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        single = train(_cfg(image_dir, tmp_path / "single", batch_size=4, steps=steps))
    finally:
        torch.set_default_dtype(previous)
    run_ddp(_ddp_worker, 2, str(image_dir), str(tmp_path / "ddp"), steps)
    ddp = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=False)
    assert ddp["step"] == steps and ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    for name in ("completion", "discriminator"):
        for key, value in single[name].state_dict().items():
            assert ddp[name][key].dtype == value.dtype
            torch.testing.assert_close(ddp[name][key], value, rtol=1e-9, atol=1e-11, msg=f"{name}.{key} differs")
    assert (tmp_path / "ddp" / "model.pt").is_file()


def test_validation_grid_and_metrics(image_dir, tmp_path):
    out = tmp_path / "val"
    train(_cfg(image_dir, out, steps=4, val_images=str(image_dir), val_count=3, val_every=2))
    for step in (2, 4):
        grid = Image.open(out / "val" / f"step_{step:07d}.png")
        assert grid.size == (3 * (SIZE + 4), 3 * (SIZE + 4))  # masked | output | target, 3 rows, 2-px frames
    val = [r for r in _log(out) if "val/psnr" in r]
    assert [r["step"] for r in val] == [2, 4]
    assert all(r["val/psnr"] > 0 and 0 < r["val/ssim"] <= 1 for r in val)


def test_amp_on_cpu_warns_and_trains_in_float32(image_dir, tmp_path):
    with pytest.warns(RuntimeWarning, match="only used on CUDA"):
        result = train(_cfg(image_dir, tmp_path / "amp", steps=2, amp=True))
    ckpt = torch.load(tmp_path / "amp" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["scaler_c"] is None and ckpt["scaler_d"] is None
    assert all(p.dtype == torch.float32 for p in result["completion"].parameters())


def test_loss_scalers_are_checkpointed_and_resume_exactly(image_dir, tmp_path, monkeypatch):
    """The GradScaler path of every phase, on CPU scalers (AMP's loss scaling without autocast):
    both scalers' states (grown scale, growth tracker) go through the checkpoint."""
    from fastinpaint.training.glcic_run import GLCICTrainer

    monkeypatch.setattr(GLCICTrainer, "new_scaler",
                        lambda self: torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=2))
    full = train(_cfg(image_dir, tmp_path / "full", steps=7))
    out = tmp_path / "split"
    train(_cfg(image_dir, out, steps=3, checkpoint_every=3))
    resumed = train(_cfg(image_dir, out, steps=7, resume=True))
    for name in ("completion", "discriminator"):
        a, b = full[name].state_dict(), resumed[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = full["trainer"], resumed["trainer"]
    for x, y in ((a.scaler, b.scaler), (a.scaler_d, b.scaler_d)):
        assert x.state_dict() == y.state_dict()
        assert x.get_scale() > 2.0**8  # grown: the state round-tripped is not the initial one
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["scaler_c"] == a.scaler.state_dict() and ckpt["scaler_d"] == a.scaler_d.state_dict()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="AMP (float16 autocast) needs CUDA")
def test_amp_on_cuda(image_dir, tmp_path):
    result = train(_cfg(image_dir, tmp_path / "amp", steps=6, amp=True, val_images=str(image_dir), val_every=6))
    assert result["trainer"].amp and result["completion"].output.weight.is_cuda
    assert all(np.isfinite(v) for r in _log(tmp_path / "amp") for k, v in r.items() if k.startswith("loss/"))
    ckpt = torch.load(tmp_path / "amp" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["scaler_c"] and ckpt["scaler_d"] and ckpt["scaler_c"]["scale"] > 0
    resumed = train(_cfg(image_dir, tmp_path / "amp", steps=8, amp=True, resume=True))
    assert resumed["step"] == 8


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(image_dir, tmp_path, monkeypatch):
    """A SIGINT during step 4 is deferred: that step finishes, the checkpoint holds step 4."""
    import os
    import signal

    import fastinpaint.training.glcic_run as glcic_run

    full = train(_cfg(image_dir, tmp_path / "full", steps=6))
    real_step, calls = glcic_run.glcic_step, {"n": 0}

    def interrupting_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step(*args, **kwargs)

    out = tmp_path / "ctrl_c"
    monkeypatch.setattr(glcic_run, "glcic_step", interrupting_step)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(image_dir, out, steps=6))
    monkeypatch.setattr(glcic_run, "glcic_step", real_step)
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=False)["step"] == 4
    resumed = train(_cfg(image_dir, out, steps=6, resume=True))
    for name in ("completion", "discriminator"):
        a, b = full[name].state_dict(), resumed[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_unknown_model_option_is_an_error(image_dir, tmp_path):
    with pytest.raises(ValueError, match="model_options"):
        train(_cfg(image_dir, tmp_path / "bad", model_options={"widht": 4}))
