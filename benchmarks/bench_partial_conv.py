"""Partial convolution: fastinpaint vs the pure-PyTorch reference layer (NVIDIA's formulation with
multi_channel=True: a second, full convolution for the mask), vs torch-pconv (PyPI; single-channel
masks only), vs a plain nn.Conv2d of the same shape — float32, CPU, PConvUNet layer shapes at
256², batch 4. Forward is timed under no_grad (inference), forward+backward with gradients for
input, weight and bias.

    pytest benchmarks/bench_partial_conv.py     # pytest-benchmark timings, ratio table, peak memory
    python benchmarks/bench_partial_conv.py     # README table: round-robin medians, wall and CPU

On a GPU, ``test_partial_conv_speed_cuda`` (``pytest benchmarks/bench_partial_conv.py -k cuda``)
times the same layers on CUDA against cuDNN's plain convolution, with peak CUDA memory; it skips
without a GPU or without fastinpaint's CUDA build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import fastinpaint
from fastinpaint.ops import partial_conv2d

import conftest

# PConvUNet layers at 256² (INPAINTING_FACTS.md), batch 4.
LAYERS = {
    "enc_2": dict(c_in=64, c_out=128, k=5, stride=2, padding=2, size=128, mask_channels=None, bias=False),
    "dec_3": dict(c_in=384, c_out=128, k=3, stride=1, padding=1, size=64, mask_channels=[256, 128], bias=False),
    "dec_1": dict(c_in=67, c_out=3, k=3, stride=1, padding=1, size=256, mask_channels=[64, 3], bias=True),
}
_TINY = dict(c_in=6, c_out=4, k=3, stride=1, padding=1, size=8, mask_channels=[4, 2], bias=True)
BATCH = 4
IMPLS = ["fastinpaint", "reference", "torch-pconv", "conv2d"]
MODES = ["fwd", "fwd+bwd"]

needs_cuda = pytest.mark.skipif(not (torch.cuda.is_available() and fastinpaint.built_with_cuda()),
                                reason="needs a CUDA GPU and fastinpaint built with its CUDA kernels")


def reference_layer(x, mask_full, weight, bias, stride, padding):
    """NVIDIA's public PartialConv2d forward with multi_channel=True (mask conv with all ones)."""
    with torch.no_grad():
        ones = torch.ones_like(weight)
        update = F.conv2d(mask_full, ones, None, stride, padding)
        ratio = (ones.shape[1] * ones.shape[2] * ones.shape[3]) / (update + 1e-8)
        update = torch.clamp(update, 0, 1)
        ratio = ratio * update
    raw = F.conv2d(x * mask_full, weight, bias, stride, padding)
    if bias is not None:
        b = bias.view(1, -1, 1, 1)
        out = ((raw - b) * ratio + b) * update
    else:
        out = raw * ratio
    return out, update


def build(layer: str, impl: str, mode: str, seed: int = 0, device: str = "cpu"):
    """Returns a zero-argument callable running one step of `impl` on `layer` in `mode`; on a CUDA
    `device` the step waits for the GPU to finish (so that a timer around it measures the GPU)."""
    cfg = _TINY if layer == "tiny" else LAYERS[layer]
    g = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same numbers on every device
    n, s = BATCH, cfg["size"]
    grad = mode == "fwd+bwd"
    x = torch.randn(n, cfg["c_in"], s, s, generator=g).to(device).requires_grad_(grad)
    weight = (torch.randn(cfg["c_out"], cfg["c_in"], cfg["k"], cfg["k"], generator=g) * 0.05).to(device).requires_grad_(grad)
    bias = torch.randn(cfg["c_out"], generator=g).to(device).requires_grad_(grad) if cfg["bias"] else None
    counts = cfg["mask_channels"] or [cfg["c_in"]]
    seg_mask = (torch.rand(n, len(counts), s, s, generator=g) > 0.3).float().to(device)
    stride, padding = cfg["stride"], cfg["padding"]
    params = [t for t in (x, weight, bias) if t is not None]  # what fwd+bwd differentiates

    if impl == "fastinpaint":
        def forward():
            return partial_conv2d(x, seg_mask, weight, bias, stride, padding, mask_channels=cfg["mask_channels"])[0]
    elif impl == "reference":
        mask_full = torch.cat([seg_mask[:, i : i + 1].expand(-1, c, -1, -1) for i, c in enumerate(counts)], 1)
        mask_full = mask_full.contiguous()

        def forward():
            return reference_layer(x, mask_full, weight, bias, stride, padding)[0]
    elif impl == "torch-pconv":
        torch_pconv = pytest.importorskip("torch_pconv", reason="torch-pconv is not installed")
        layer_mod = torch_pconv.PConv2d(cfg["c_in"], cfg["c_out"], cfg["k"], stride, padding, bias=cfg["bias"]).to(device)
        with torch.no_grad():
            layer_mod.regular_conv.weight.copy_(weight)
        mask3 = seg_mask[:, 0].contiguous()  # single-channel masks only: it cannot express mask groups
        own = [layer_mod.regular_conv.weight] + ([layer_mod.bias] if cfg["bias"] else [])
        for p in own:
            p.requires_grad_(grad)
        params = [x] + own

        def forward():
            return layer_mod(x, mask3)[0]
    elif impl == "conv2d":
        def forward():
            return F.conv2d(x, weight, bias, stride, padding)
    else:
        raise ValueError(impl)

    if not grad:
        def step():
            with torch.no_grad():
                forward()
    else:
        def step():
            out = forward()
            torch.autograd.grad(out, params, torch.ones_like(out))
    if torch.device(device).type == "cuda":
        run = step

        def step():
            run()
            torch.cuda.synchronize()
    return step


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_partial_conv_speed(benchmark, layer, impl, mode):
    step = build(layer, impl, mode)
    benchmark.group = f"partial_conv2d {layer} {mode}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "conv2d")
    benchmark.pedantic(step, rounds=7, warmup_rounds=2, iterations=1)


@needs_cuda
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layer", list(LAYERS))
def test_partial_conv_speed_cuda(benchmark, layer, impl, mode):
    """The same layers on the GPU, float32; conv2d is cuDNN's (TF32 as torch's defaults allow)."""
    step = build(layer, impl, mode, device="cuda")
    benchmark.group = f"partial_conv2d cuda {layer} {mode}"
    benchmark.extra_info.update(impl=impl, baseline=impl == "conv2d")
    benchmark.pedantic(step, rounds=30, warmup_rounds=3, iterations=1)
    benchmark.extra_info["peak_mib"] = conftest.cuda_peak_mib(step)


def warm_up():
    """One tiny forward+backward of every implementation, so that lazily loaded code (custom-op
    machinery, oneDNN kernels) does not count as the measured step's memory."""
    for impl in IMPLS:
        try:
            build("tiny", impl, "fwd+bwd")()
        except pytest.skip.Exception:
            pass


_PEAK_SCRIPT = """
import sys, json
sys.path.insert(0, {bench_dir!r})
import torch
torch.set_num_threads({threads})
from bench_partial_conv import build, warm_up
def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
warm_up()
step = build({layer!r}, {impl!r}, {mode!r})
before = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: reset the peak-RSS high-water mark (VmHWM) to the current RSS
step(); step()
after = status_kib("VmHWM")
print(json.dumps((after - before) / 1024))
"""


def peak_memory_mib(layer: str, impl: str, mode: str) -> float:
    """Peak resident memory above the resident memory at the start of two steps (inputs and
    weights already allocated), in a fresh interpreter on Linux. CPU tensors have no allocator
    statistics; large buffers are mmap-ed by malloc, so resident memory follows what is live."""
    script = _PEAK_SCRIPT.format(bench_dir=os.path.dirname(__file__), threads=torch.get_num_threads(),
                                 layer=layer, impl=impl, mode=mode)
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def test_partial_conv_peak_memory():
    rows = ["Peak memory growth, forward+backward (MiB, fresh process each):",
            f"  {'layer':<8s}" + "".join(f"{impl:>14s}" for impl in IMPLS)]
    for layer in LAYERS:
        cells = []
        for impl in IMPLS:
            try:
                cells.append(f"{peak_memory_mib(layer, impl, 'fwd+bwd'):14.1f}")
            except subprocess.CalledProcessError:
                cells.append(f"{'n/a':>14s}")
        rows.append(f"  {layer:<8s}" + "".join(cells))
    conftest.ROLLUPS.append("\n".join(rows))


def table(rounds: int = 7) -> str:
    """Markdown table for the README: every implementation run round-robin (so that load from
    other processes hits all alike), medians of wall and CPU time, as multiples of conv2d."""
    import time

    rows = ["| layer | mode | " + " | ".join(f"{impl} wall / CPU" for impl in IMPLS) + " |",
            "|---|---|" + "---|" * len(IMPLS)]
    for layer in LAYERS:
        for mode in MODES:
            steps = {}
            for impl in IMPLS:
                try:
                    steps[impl] = build(layer, impl, mode)
                except pytest.skip.Exception:
                    pass
            for step in steps.values():
                step()
            wall = {k: [] for k in steps}
            cpu = {k: [] for k in steps}
            for _ in range(rounds):
                for impl, step in steps.items():
                    w, c = time.perf_counter(), time.process_time()
                    step()
                    wall[impl].append(time.perf_counter() - w)
                    cpu[impl].append(time.process_time() - c)
            med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
            bw, bc = med(wall["conv2d"]), med(cpu["conv2d"])
            cells = [f"{med(wall[i]) / bw:.2f}× / {med(cpu[i]) / bc:.2f}×" if i in steps else "n/a" for i in IMPLS]
            rows.append(f"| {layer} | {mode} | " + " | ".join(cells) + " |")
            print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


if __name__ == "__main__":
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    print(table())
