"""PatchMatch on the GPU (pytest-benchmark): ``pytest benchmarks/bench_patchmatch_gpu.py``.

1. ``fastinpaint.ops.nnf`` with jump flooding (the GPU's propagation) on CUDA, in target pixels
   per second, against the same call on the CPU in the same run (at the CPU table's 160x128 and
   at 512x512).
2. Whole inpainting, ``fastinpaint.inpaint(img, mask, method="patchmatch", device="cuda")`` on
   a numpy image (the command line's path: uploads and downloads included), at 512 px (the
   development photo ``sunset_hill`` with its ``irr_20_30`` mask) and 2048 px (the same pair
   upscaled, longer side 2048), against the CPU in the same run, with the PSNR inside the hole
   of each result.

Every test skips without a GPU or without fastinpaint's CUDA build. The development data is
looked for in ../shared/data beside the repository, then in shared/data inside it (where a copy
of the working tree on a GPU machine has it); without it a synthetic image and mask of the same
size are used. Each timed call ends with ``torch.cuda.synchronize()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import fastinpaint

ROOT = Path(__file__).resolve().parents[1]
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if d.is_dir()),
            ROOT.parent / "shared" / "data")
PAIR = ("sunset_hill", "irr_20_30")  # 512x341, 24 % hole

pytestmark = pytest.mark.skipif(not (torch.cuda.is_available() and fastinpaint.built_with_cuda()),
                                reason="needs a CUDA GPU and fastinpaint built with its CUDA kernels")


def _synced(fn, device):
    def run():
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


@pytest.fixture(scope="module", autouse=True)
def cuda_warm():
    """CUDA context, kernel loading and the allocator's first blocks are not what we time."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = np.arange(64, dtype=np.uint8)[:, None] * 4
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    fastinpaint.inpaint(img, mask, method="patchmatch", seed=0, device="cuda", hd_strategy="original")
    torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------
# 1. NNF, jump flooding
# ------------------------------------------------------------------------------------------------
def _nnf_pair(h, w):
    """Target and source halves of a development photo resized to (h, 2w); noise without data."""
    path = DATA / "photos" / "summer_lake.png"
    if path.exists():
        from PIL import Image

        img = np.asarray(Image.open(path).convert("RGB").resize((2 * w, h), Image.BICUBIC), dtype=np.float32) / 255
        t = torch.from_numpy(img).permute(2, 0, 1)
        return t[:, :, :w].contiguous(), t[:, :, w:].contiguous()
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, h, w, generator=g), torch.rand(3, h, w, generator=g)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("size", [(160, 128), (512, 512)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_nnf_jump_flooding(benchmark, size, device):
    target, source = (t.to(device) for t in _nnf_pair(*size))
    run = _synced(lambda: fastinpaint.ops.nnf(target, source, 7, propagation="jump", seed=0), device)
    benchmark.group = f"nnf jump flooding, {size[0]}x{size[1]} (HxW) target and source, 7x7 patches"
    benchmark.extra_info.update(impl=device, baseline=device == "cpu")
    _, dist = benchmark.pedantic(run, rounds=10 if device == "cuda" else 3, warmup_rounds=1, iterations=1)
    benchmark.extra_info["target_px_per_s"] = round(size[0] * size[1] / benchmark.stats.stats.median)
    benchmark.extra_info["mean_patch_distance"] = round(float(dist.float().mean()), 5)


# ------------------------------------------------------------------------------------------------
# 2. whole inpainting
# ------------------------------------------------------------------------------------------------
def _pair(long_side):
    """(image uint8 HxWx3, mask uint8 HxW, 255 = hole) with its longer side ``long_side``."""
    from PIL import Image

    photo = DATA / "photos" / f"{PAIR[0]}.png"
    if photo.exists():
        img = Image.open(photo).convert("RGB")
        mask = Image.open(DATA / "masks" / f"{PAIR[0]}__{PAIR[1]}.png").convert("L")
    else:  # synthetic: smooth colour ramps plus texture, an irregular hole of about a quarter
        h, w = 341, 512
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        rgb = np.stack([xx / w, yy / h, 0.5 + 0.25 * np.sin(xx / 9) * np.cos(yy / 13)], -1)
        img = Image.fromarray((rgb * 255).astype(np.uint8))
        hole = ((xx - 250) / 120) ** 2 + ((yy - 170) / 90) ** 2 < 1
        hole |= (np.abs(yy - 0.4 * xx - 60) < 12) & (xx > 60) & (xx < 450)
        mask = Image.fromarray(hole.astype(np.uint8) * 255)
    scale = long_side / max(img.size)
    if scale != 1:
        size = (round(img.size[0] * scale), round(img.size[1] * scale))
        img, mask = img.resize(size, Image.BICUBIC), mask.resize(size, Image.NEAREST)
    return np.asarray(img).copy(), (np.asarray(mask) > 127).astype(np.uint8) * 255


def _psnr_in_hole(a, b, hole):
    mse = np.mean((a[hole].astype(np.float64) - b[hole].astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("long_side", [512, 2048], ids=lambda n: f"{n}px")
def test_inpaint_patchmatch(benchmark, long_side, device):
    img, mask = _pair(long_side)
    # the whole image on both devices (equal work; "auto" would crop the 2048 px photo's holes)
    run = _synced(lambda: fastinpaint.inpaint(img, mask, method="patchmatch", seed=0, device=device,
                                              hd_strategy="original"), device)
    h, w = mask.shape
    benchmark.group = f"patchmatch inpaint, {w}x{h} (WxH) ({'photo' if DATA.is_dir() else 'synthetic'}, hole {np.mean(mask > 0):.0%})"
    benchmark.extra_info.update(impl=device, baseline=device == "cpu")
    # The CPU at 2048 px takes seconds even on many cores: one round is enough for the ratio.
    rounds = {("cuda", 512): 5, ("cuda", 2048): 3, ("cpu", 512): 3, ("cpu", 2048): 1}[device, long_side]
    out = benchmark.pedantic(run, rounds=rounds, iterations=1)
    assert out.shape == img.shape and np.array_equal(out[mask == 0], img[mask == 0])
    benchmark.extra_info["psnr_hole_db"] = round(float(_psnr_in_hole(out, img, mask > 0)), 2)
