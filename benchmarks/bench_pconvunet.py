"""PConvUNet forward: fastinpaint's fused op vs the same network on the reference layer.

The reference is NVIDIA's public formulation of partial convolution, written here: the mask is
convolved with an all-ones ``(C_out, C_in, kh, kw)`` kernel (a second full convolution), masks
are multi-channel (every layer returns a ``C_out``-channel mask, the decoder concatenates
full-width masks), ratio ``winsize / (count + 1e-8)``. Both networks get the same weights and
their outputs are checked to agree before anything is timed.

Run:
    pytest benchmarks/bench_pconvunet.py            # pytest-benchmark timing + memory table
    pytest benchmarks --benchmark-timer=time.process_time   # CPU time, steadier on a shared machine
    python benchmarks/bench_pconvunet.py            # markdown table for the README (wall and CPU)

Both layouts are measured (``contiguous`` NCHW and ``channels_last``), each network in the same
layout. Time: ``torch.inference_mode`` forward, median of a few rounds after one warm-up, in this
process; the table alternates the two networks round by round so that load from other
processes hits both alike (pytest-benchmark runs them one after the other).

Peak memory: each (network, configuration) is run in a fresh subprocess with
``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc serves every tensor larger than 64 KiB with
mmap and returns it on free (resident memory then follows the live tensors instead of the
allocator's cache). After building the network and inputs and one warm-up forward, the
process resets its resident-set high-water mark (``/proc/self/clear_refs`` ← 5), runs one
forward and reports ``VmHWM - VmRSS(before)``: the extra resident memory that forward needed at
its peak — activations, masks, oneDNN scratch and all, weights excluded (they are resident
before). Linux only.

On a GPU, ``test_forward_time_cuda`` (``pytest benchmarks/bench_pconvunet.py -k cuda``) times
the same forward on CUDA: fastinpaint in float32 and float16, the reference in float32 (its
``1e-8`` underflows in float16), with peak CUDA memory. It skips without a GPU or without
fastinpaint's CUDA build.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastinpaint
from fastinpaint.nn import PConvUNet

import conftest

CONFIGS = [  # (layers, size, batch)
    (7, 256, 1),
    (7, 256, 4),
    (8, 512, 1),
]
IMPLS = ["fastinpaint", "reference"]
FORMATS = ["contiguous", "channels_last"]  # activation layout, the same for both networks
CUDA_VARIANTS = ["fastinpaint-fp32", "reference-fp32", "fastinpaint-fp16"]  # network-precision

needs_cuda = pytest.mark.skipif(not (torch.cuda.is_available() and fastinpaint.built_with_cuda()),
                                reason="needs a CUDA GPU and fastinpaint built with its CUDA kernels")


# ------------------------------------------------------------------------------------------------
# the reference network (NVIDIA formulation, multi-channel masks)
# ------------------------------------------------------------------------------------------------
class ReferencePartialConv2d(nn.Conv2d):
    """NVIDIA-style partial convolution, ``multi_channel=True, return_mask=True``."""

    def forward(self, x, mask):
        with torch.no_grad():
            ones = torch.ones(self.out_channels, self.in_channels, *self.kernel_size, dtype=x.dtype, device=x.device)
            count = F.conv2d(mask, ones, None, self.stride, self.padding, self.dilation, 1)
            ratio = (self.in_channels * self.kernel_size[0] * self.kernel_size[1]) / (count + 1e-8)
            new_mask = count.clamp(0, 1)
            ratio = ratio * new_mask
        raw = F.conv2d(x * mask, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.bias is None:
            out = raw * ratio
        else:
            b = self.bias.view(1, -1, 1, 1)
            out = ((raw - b) * ratio + b) * new_mask
        return out, new_mask


class ReferencePConvUNet(nn.Module):
    """The PConvUNet layout on :class:`ReferencePartialConv2d`; keys mirror :class:`PConvUNet`."""

    def __init__(self, ours: PConvUNet):
        super().__init__()
        self.layers = ours.layers
        for name, block in ours.named_children():
            conv = block.conv
            ref = ReferencePartialConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                         conv.padding, bias=conv.bias is not None)
            layer = nn.Module()
            layer.conv = ref
            layer.bn = block.bn
            layer.act = block.act
            self.add_module(name, layer)
        self.load_state_dict(ours.state_dict())

    def _block(self, name, x, mask):
        layer = getattr(self, name)
        x, mask = layer.conv(x, mask)
        if layer.bn is not None:
            x = layer.bn(x)
        if layer.act is not None:
            x = layer.act(x)
        return x, mask

    def forward(self, x, mask):  # mask: (N, C_in, H, W), multi-channel throughout
        hs, ms = [x], [mask]
        for i in range(1, self.layers + 1):
            x, mask = self._block(f"enc_{i}", x, mask)
            hs.append(x)
            ms.append(mask)
        for i in range(self.layers, 0, -1):
            x = torch.cat([F.interpolate(x, scale_factor=2.0, mode="nearest"), hs[i - 1]], 1)
            mask = torch.cat([F.interpolate(mask, scale_factor=2.0, mode="nearest"), ms[i - 1]], 1)
            x, mask = self._block(f"dec_{i}", x, mask)
        return x


# ------------------------------------------------------------------------------------------------
# setup shared by the timing, the memory subprocess and the table
# ------------------------------------------------------------------------------------------------
def build(layers: int, size: int, batch: int, fmt: str = "contiguous", seed: int = 0):
    """Both networks with the same (non-trivial) weights, an image batch and per-image masks."""
    torch.manual_seed(seed)
    ours = PConvUNet(layers=layers).eval()
    with torch.no_grad():
        for name, buf in ours.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    ref = ReferencePConvUNet(ours).eval()
    x = torch.randn(batch, 3, size, size)
    valid = torch.ones(batch, 1, size, size)
    g = torch.Generator().manual_seed(seed)
    for i in range(batch):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=g).tolist()
        valid[i, :, y0:y0 + size // 3, x0:x0 + size // 3] = 0
    if fmt == "channels_last":
        # The whole network in the layout, weights included (both networks alike): a convolution
        # on channels_last activations otherwise copies each NCHW weight into that layout first.
        x = x.contiguous(memory_format=torch.channels_last)
        ours.to(memory_format=torch.channels_last)
        ref.to(memory_format=torch.channels_last)
    elif fmt != "contiguous":
        raise ValueError(f"unknown memory format {fmt!r}")
    return ours, ref, x, valid


def runner(impl: str, ours, ref, x, valid):
    if impl == "fastinpaint":
        return lambda: ours(x, valid)
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    full = valid.expand(-1, 3, -1, -1).contiguous(memory_format=fmt)  # the reference takes a per-channel mask
    return lambda: ref(x, full)


def check_agree(ours, ref, x, valid) -> float:
    with torch.inference_mode():
        a = runner("fastinpaint", ours, ref, x, valid)()
        b = runner("reference", ours, ref, x, valid)()
    diff = (a - b).abs().max().item()
    assert diff < 1e-3 * max(1.0, b.abs().max().item()), f"fastinpaint and reference disagree by {diff}"
    return diff


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure_in_this_process(impl: str, layers: int, size: int, batch: int, fmt: str) -> Dict[str, float]:
    ours, ref, x, valid = build(layers, size, batch, fmt)
    fn = runner(impl, ours, ref, x, valid)
    with torch.inference_mode():
        fn()  # warm-up: oneDNN primitives, thread pool
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        t = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t
        peak = _status_kib("VmHWM")
    del out
    return {"peak_mib": (peak - before) / 1024, "seconds": elapsed}


def peak_memory_mib(impl: str, layers: int, size: int, batch: int, fmt: str = "contiguous") -> float:
    """Extra resident memory at the peak of one forward, measured in a fresh subprocess (MiB)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, os.path.abspath(__file__), "--memory", impl, str(layers), str(size), str(batch), fmt]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_mib"]


def median_times(fns: Dict[str, object], rounds: int) -> Dict[str, Dict[str, float]]:
    """Median wall and process-CPU seconds per call of each function.

    Rounds alternate between the functions, so load from other processes hits them alike. CPU
    time (all threads of this process) is the steadier figure on a shared machine: it counts the
    work done, not the time spent waiting for a core.
    """
    wall: Dict[str, list] = {name: [] for name in fns}
    cpu: Dict[str, list] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            fn()  # warm-up
        for _ in range(rounds):
            for name, fn in fns.items():
                t, c = time.perf_counter(), time.process_time()
                fn()
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - t)
    return {name: {"wall": statistics.median(wall[name]), "cpu": statistics.median(cpu[name])} for name in fns}


# ------------------------------------------------------------------------------------------------
# pytest-benchmark
# ------------------------------------------------------------------------------------------------
_built: Dict[tuple, tuple] = {}


def _get(config, fmt):
    if (config, fmt) not in _built:
        _built.clear()  # keep one configuration's networks alive at a time
        _built[(config, fmt)] = build(*config, fmt)
        check_agree(*_built[(config, fmt)])
    return _built[(config, fmt)]


def _id(config):
    layers, size, batch = config
    return f"L{layers}-{size}px-b{batch}"


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_forward_time(benchmark, config, fmt, impl):
    ours, ref, x, valid = _get(config, fmt)
    fn = runner(impl, ours, ref, x, valid)
    benchmark.group = f"PConvUNet forward {_id(config)} {fmt}"
    benchmark.extra_info.update(dict(zip(("layers", "size", "batch"), config)), impl=impl, memory_format=fmt)

    def run():
        with torch.inference_mode():
            fn()

    # check_agree() already ran both networks once on these inputs: that is the warm-up
    benchmark.pedantic(run, rounds=3 if config[1] * config[2] <= 256 else 2, iterations=1)


_built_cuda: Dict[tuple, Dict[str, tuple]] = {}


def _get_cuda(config, fmt):
    """Both networks on the GPU in float32, and fastinpaint's in float16, checked to agree first."""
    if (config, fmt) not in _built_cuda:
        _built_cuda.clear()
        torch.cuda.empty_cache()
        ours, ref, x, valid = (t.cuda() for t in build(*config, fmt))
        # Agreement in full float32: cuDNN's default TF32 would blur the comparison, not the timing.
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            check_agree(ours, ref, x, valid)
        fmt_mem = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        half = (copy.deepcopy(ours).half(), None, x.half().contiguous(memory_format=fmt_mem), valid.half())
        with torch.inference_mode():
            out = half[0](half[2], half[3])
        assert torch.isfinite(out).all(), "fastinpaint's PConvUNet gives non-finite float16 output"
        _built_cuda[(config, fmt)] = {"fp32": (ours, ref, x, valid), "fp16": half}
    return _built_cuda[(config, fmt)]


@needs_cuda
@pytest.mark.parametrize("variant", CUDA_VARIANTS)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_forward_time_cuda(benchmark, config, fmt, variant):
    impl, precision = variant.split("-")
    fn = runner(impl, *_get_cuda(config, fmt)[precision])
    benchmark.group = f"PConvUNet forward cuda {_id(config)} {fmt}"
    benchmark.extra_info.update(dict(zip(("layers", "size", "batch"), config)), impl=variant, memory_format=fmt,
                                baseline=variant == "reference-fp32")

    def run():
        with torch.inference_mode():
            fn()
        torch.cuda.synchronize()

    benchmark.pedantic(run, rounds=20, warmup_rounds=2, iterations=1)
    benchmark.extra_info["peak_mib"] = conftest.cuda_peak_mib(run)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_peak_memory(config, fmt, record_property, capsys):
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("peak-RSS measurement needs Linux /proc")
    peaks = {impl: peak_memory_mib(impl, *config, fmt) for impl in IMPLS}
    ratio = peaks["fastinpaint"] / peaks["reference"]
    record_property("peak_mib", peaks)
    with capsys.disabled():
        print(f"\n[peak memory] {_id(config)} {fmt}: fastinpaint {peaks['fastinpaint']:.0f} MiB, "
              f"reference {peaks['reference']:.0f} MiB, ratio {ratio:.2f}")


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def table(rounds: int = 3) -> str:
    rows = ["| network | input | batch | layout | wall: fastinpaint / reference (s) | speed-up | "
            "CPU: fastinpaint / reference (s) | CPU speed-up | peak: fastinpaint / reference (MiB) | memory ratio |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for (layers, size, batch), fmt in itertools.product(CONFIGS, FORMATS):
        ours, ref, x, valid = build(layers, size, batch, fmt)
        check_agree(ours, ref, x, valid)
        t = median_times({impl: runner(impl, ours, ref, x, valid) for impl in IMPLS}, rounds)
        del ours, ref, x, valid
        m = {impl: peak_memory_mib(impl, layers, size, batch, fmt) for impl in IMPLS}
        f, r = t["fastinpaint"], t["reference"]
        rows.append(f"| {layers} layers | {size}² | {batch} | {fmt} | {f['wall']:.3f} / {r['wall']:.3f} | "
                    f"{r['wall'] / f['wall']:.2f}× | {f['cpu']:.2f} / {r['cpu']:.2f} | {r['cpu'] / f['cpu']:.2f}× | "
                    f"{m['fastinpaint']:.0f} / {m['reference']:.0f} | {m['fastinpaint'] / m['reference']:.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
    return "\n".join(rows)


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--memory":
        impl, (layers, size, batch), fmt = sys.argv[2], map(int, sys.argv[3:6]), sys.argv[6]
        print(json.dumps(_measure_in_this_process(impl, layers, size, batch, fmt)))
    else:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
        print(table())
