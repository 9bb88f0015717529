"""The GPU recipe (configs/gpu, scripts/train_gpu; issue 18): what a CPU can check of it — the
configs parse into runs of the bundled architectures, a few steps run with their AMP flag falling
back to float32 on the CPU, and the wall-clock limit that keeps the recipe within its minutes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time

import pytest
import torch

from fastinpaint.models import load_pconv_checkpoint
from fastinpaint.nn import GLCIC
from fastinpaint.training import Trainer, make_train_loader, train
from fastinpaint.training.run import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "gpu"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", ["pconv", "glcic"])
def test_gpu_config_runs_a_few_steps_on_the_cpu_with_amp_falling_back(name, image_dir, tmp_path):
    cfg = load_config(CONFIGS / f"{name}.toml")
    assert cfg["amp"] is True and 0 < cfg["time_limit"] <= 5  # two runs in 10 minutes
    # the bundled architecture, at a size and batch a CPU test can afford
    overrides = dict(images=str(image_dir), val_images=str(image_dir), out_dir=str(tmp_path / name), size=32, batch_size=2,
                     steps=2, num_workers=0, checkpoint_every=2, progress=False)
    if name == "glcic":
        overrides["glcic_completion_steps"] = 2
    with pytest.warns(RuntimeWarning, match="amp=True is only used on CUDA"):
        train(cfg, **overrides)
    exported = tmp_path / name / "model.pt"
    if name == "pconv":
        net = load_pconv_checkpoint(exported)
        assert (net.layers, net.base_channels, net.max_channels) == (7, 32, 128)
    else:
        net = GLCIC.load(exported)
        assert (net.width, net.prefill) == (32, "pushpull")
    assert torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["step"] == 2


def test_time_limit_stops_saves_and_exports(image_dir, tmp_path):
    from fastinpaint.data import ImageFolder, InpaintingDataset
    from fastinpaint.masks import IrregularMaskDataset

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 3, 3, padding=1)

        def forward(self, image, valid):
            time.sleep(0.3)
            return torch.sigmoid(self.conv(torch.cat([image, valid], 1)))

    def loss(out, target, valid):
        return {"total": (out - target).abs().mean()}

    net = Slow()
    ds = InpaintingDataset(ImageFolder(image_dir, size=16, seed=0), IrregularMaskDataset(16, seed=1))
    trainer = Trainer(net, loss, torch.optim.SGD(net.parameters(), lr=0.1), make_train_loader(ds, 2, seed=0),
                      out_dir=tmp_path, max_steps=1000, checkpoint_every=0, progress=False, device="cpu",
                      time_limit=1.0 / 60)  # one second
    t0 = time.perf_counter()
    trainer.fit()
    assert time.perf_counter() - t0 < 10
    assert 1 <= trainer.step < 1000
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["step"] == trainer.step


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), "5"])
def test_bad_time_limit_is_a_clear_error(bad, tmp_path):
    net = torch.nn.Conv2d(4, 3, 1)
    with pytest.raises(ValueError, match="time_limit must be a positive number of minutes"):
        Trainer(net, None, torch.optim.SGD(net.parameters(), lr=0.1), [], out_dir=tmp_path, device="cpu",
                time_limit=bad)


def test_train_gpu_script_refuses_clearly_without_photos(tmp_path):
    # run from a copy without train_photos: one clear line, non-zero exit, nothing trained
    script = (REPO / "scripts" / "train_gpu").read_text()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train_gpu").write_text(script)
    res = subprocess.run(["bash", str(tmp_path / "scripts" / "train_gpu")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": "false"})
    assert res.returncode != 0 and "train_photos missing" in res.stderr
