"""Every example in the package's docstrings runs as pasted into a fresh interpreter: each
docstring's examples start from empty globals, so they must import what they use (a new user found
``fastinpaint.ops.nnf``'s used ``fastinpaint`` without importing it, ``inpaint_glcic``'s a weights
file that does not exist, and fragments that used names defined nowhere)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tempfile

import pytest
import torch

import fastinpaint

#: Not collected: ``__main__`` modules (they run when imported); the deprecated ``methods.poisson``
#: (importing it warns; it has no example).
EXCLUDED = ("fastinpaint.methods.poisson",)

#: Docstrings whose examples need what a machine may lack: name -> (available(), why skipped).
#: An example that needs a GPU goes here with ``torch.cuda.is_available``.
NEEDS = {
    "fastinpaint.backend.cuda_emulation": (lambda: bool(fastinpaint._C.built_with_cuda_emulation),
                                           "built without CUDA emulation"),
}


def public_modules():
    names = []
    for info in pkgutil.walk_packages(fastinpaint.__path__, "fastinpaint.", onerror=lambda name: None):
        if info.name.split(".")[-1] == "__main__" or info.name.startswith(EXCLUDED):
            continue
        names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("name", public_modules())
def test_docstring_examples_run_as_pasted(name, tmp_path, monkeypatch):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:  # an optional extra (the server's starlette)
        if (e.name or "").startswith("fastinpaint"):
            raise
        pytest.skip(f"{name} needs {e.name}, not installed")
    # files the examples write (tempfile.mkdtemp(), or a relative path) land in tmp_path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    torch.manual_seed(0)
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    skipped = []
    for test in doctest.DocTestFinder().find(module, name, globs={}):
        available, why = NEEDS.get(test.name, (lambda: True, ""))
        if not test.examples:
            continue
        if not available():
            skipped.append(f"{test.name}: {why}")
            continue
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    if skipped and not runner.tries:
        pytest.skip("; ".join(skipped))
