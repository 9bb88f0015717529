"""pytest plugin of scripts/gpu_check: keeps only the tests that need a real GPU, or only the rest.

    PYTHONPATH=scripts pytest -p gpu_check_select --gpu-check=gpu tests    # the real-GPU tests
    PYTHONPATH=scripts pytest -p gpu_check_select --gpu-check=rest tests   # everything else

A test needs a GPU when any of these holds:

* one of its parameters is the device ``"cuda"`` (the ``backend`` fixture of tests/conftest.py, or
  any ``device`` parametrization) — its ``cuda_emulated`` and ``cpu`` siblings do not;
* it carries a ``skipif`` mark whose reason speaks of CUDA or a GPU (``needs_gpu``, ``no CUDA
  device``, ...), unless the reason is about the CUDA *emulation*;
* its function name says ``cuda``, ``gpu`` or ``nvcc`` and not ``emulat…``.

``-k cuda`` would also pick every ``cuda_emulated`` case and every test of the
``test_cuda_*`` modules (CPU work), and miss ``test_gpu_*``; hence this plugin.
"""

from __future__ import annotations

import re

import pytest

_GPU_WORDS = re.compile(r"cuda|gpu|nvcc", re.IGNORECASE)
_EMULATION = re.compile(r"emulat", re.IGNORECASE)


def pytest_addoption(parser):
    parser.addoption("--gpu-check", choices=("gpu", "rest"), default=None,
                     help="gpu: run only the tests that need a real GPU; rest: only the others")


def _is_cuda_device(value) -> bool:
    if isinstance(value, str):
        return value == "cuda" or value.startswith("cuda:")
    return getattr(value, "type", None) == "cuda" and type(value).__name__ == "device"  # torch.device


def _says_gpu(text: str) -> bool:
    return bool(_GPU_WORDS.search(text)) and not _EMULATION.search(text)


def needs_gpu(item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(_is_cuda_device(v) for v in callspec.params.values()):
        return True
    if any(_says_gpu(str(mark.kwargs.get("reason", ""))) for mark in item.iter_markers("skipif")):
        return True
    return _says_gpu(getattr(item, "originalname", item.name))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    which = config.getoption("--gpu-check")
    if which is None:
        return
    keep, drop = [], []
    for item in items:
        (keep if needs_gpu(item) == (which == "gpu") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
