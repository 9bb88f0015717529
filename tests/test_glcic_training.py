"""`fastinpaint train --model glcic`: phases, MSE goes down, exact resume, model.pt, single-process guard."""

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


def test_multi_process_is_refused(image_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="single-process"):
        train(_cfg(image_dir, tmp_path / "ddp"))


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
