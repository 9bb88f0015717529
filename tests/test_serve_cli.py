"""``fastinpaint serve`` on the command line: its one-line errors, and a real server process
answering HTTP on a free loopback port (curl's multipart request, as the README shows it)."""

from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from PIL import Image

from fastinpaint.cli import main


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_missing_server_packages_say_what_to_install(monkeypatch, capsys):
    import fastinpaint.serve

    monkeypatch.setattr(fastinpaint.serve, "missing_requirements", lambda: ["uvicorn", "python-multipart"])
    assert main(["serve"]) == 1
    line = _error_line(capsys)
    assert "uvicorn, python-multipart" in line and "pip install 'fastinpaint[serve]'" in line


@pytest.mark.parametrize("args, words", [
    (["--input", "/no/such/folder"], "--input not found"),
    (["--weights", "/no/such.pt"], "weights file not found"),
    (["--max-pixels", "0"], "--max-pixels must be positive"),
    (["--queue-size", "-1"], "--queue-size must be >= 0"),
])
def test_bad_options_are_one_line(capsys, args, words):
    pytest.importorskip("uvicorn")
    assert main(["serve", *args]) == 1
    assert words in _error_line(capsys)


@pytest.mark.parametrize("port", ["99999", "65536", "-5", "eighty"])
def test_port_out_of_range_is_refused_naming_port(capsys, monkeypatch, port):
    """Not a port 99999 - 65536 silently, nor "cannot resolve --host" for a negative one."""
    uvicorn = pytest.importorskip("uvicorn")
    monkeypatch.setattr(uvicorn.Server, "run", lambda *a, **k: pytest.fail("started serving"))
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--port", port])
    assert exit_.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --port" in line and "--host" not in line
    assert ("must be between 0 and 65535" if port != "eighty" else "must be an integer") in line


def test_weights_are_checked_at_start_up(tmp_path, capsys, monkeypatch):
    """Each --weights file offered under the method it is for; one that is no network checkpoint
    (a log file beside them) left out with a note, before serving."""
    import shutil

    uvicorn = pytest.importorskip("uvicorn")
    from fastinpaint.weights import bundled_weights

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, **k: served.append(self.config.app))
    shutil.copy(bundled_weights("glcic"), tmp_path / "g.pt")
    (tmp_path / "serve.log").write_text("a log\n")
    assert main(["serve", "--port", "0", "--weights", str(tmp_path / "g.pt"), "--weights",
                 str(tmp_path / "serve.log")]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note" in line]
    assert len(notes) == 1 and notes[0].startswith("fastinpaint serve: note: --weights serve.log left out: ")
    assert served[0].state.config.weights == {"glcic": {"g.pt": str((tmp_path / "g.pt").resolve())}}


def test_same_weights_file_name_is_fine_across_methods_not_within_one(tmp_path, capsys, monkeypatch):
    """The trainer names every run's file model.pt: a pconv run's and a glcic run's are both offered
    (a client chooses a name for a method); two pconv files named alike are refused in one line."""
    import shutil

    uvicorn = pytest.importorskip("uvicorn")
    from fastinpaint.weights import bundled_weights

    served = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, **k: served.append(self.config.app))
    for run, method in (("A", "pconv"), ("G", "glcic"), ("B", "pconv")):
        (tmp_path / run).mkdir()
        shutil.copy(bundled_weights(method), tmp_path / run / "model.pt")
    a, g, b = (str((tmp_path / run / "model.pt").resolve()) for run in "AGB")
    assert main(["serve", "--port", "0", "--weights", a, "--weights", g]) == 0
    assert served[0].state.config.weights == {"pconv": {"model.pt": a}, "glcic": {"model.pt": g}}
    capsys.readouterr()
    assert main(["serve", "--port", "0", "--weights", a, "--weights", g, "--weights", b]) == 1
    line = _error_line(capsys)
    assert "two --weights files for method pconv are named model.pt" in line and "rename one" in line


def test_port_in_use_is_one_line(capsys):
    pytest.importorskip("uvicorn")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in _error_line(capsys)


def test_real_process_answers_on_loopback(serve_process):
    try:
        import httpx2 as httpx
    except ImportError:
        httpx = pytest.importorskip("httpx")
    pytest.importorskip("uvicorn")
    _, url = serve_process()
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(url + "healthz").json()["status"] == "ok"
    assert httpx.get(url + "healthz", headers={"Host": "rebound.example"}).status_code == 400  # DNS rebinding
    image = np.zeros((40, 50, 3), np.uint8)
    image[:, :25] = (200, 40, 40)
    image[:, 25:] = (40, 40, 200)
    hole = np.zeros((40, 50), np.uint8)
    hole[15:25, 5:15] = 255
    image[hole > 0] = (0, 255, 0)  # the object to remove
    files = {}
    for name, arr in (("image", image), ("mask", hole)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        files[name] = (f"{name}.png", buf.getvalue(), "image/png")
    resp = httpx.post(url + "api/v1/inpaint", files=files, timeout=120)  # curl -F image=@... -F mask=@...
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    out = np.asarray(Image.open(io.BytesIO(resp.content)))
    assert np.array_equal(out[hole == 0], image[hole == 0])
    assert (out[hole > 0] != (0, 255, 0)).any(axis=1).all()  # the object is gone


def _big_request(seed: int) -> dict:
    import base64

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (800, 800, 3), dtype=np.uint8)  # about a second each in patchmatch
    hole = np.zeros((800, 800), np.uint8)
    hole[200:600, 200:600] = 255
    fields = {"seed": seed}
    for name, arr in (("image", image), ("mask", hole)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        fields[name] = base64.b64encode(buf.getvalue()).decode()
    return fields


def test_ctrl_c_once_says_what_it_waits_for_twice_stops_at_once(tmp_path):
    """Ctrl-C while jobs run: one line saying what is being finished; a second Ctrl-C answers
    every client a JSON 503, saves nothing more, logs no traceback and exits at once."""
    import json
    import signal
    import subprocess
    import sys
    import threading
    import time
    import urllib.error
    import urllib.request

    pytest.importorskip("uvicorn")
    out = tmp_path / "out"
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "fastinpaint.cli", "serve", "--port", "0", "--output-dir", str(out)],
                            stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        url = proc.stdout.readline().split("open ", 1)[1].strip()
        answers = []

        def post(seed):
            req = urllib.request.Request(url + "api/v1/inpaint", data=json.dumps(_big_request(seed)).encode(),
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    answers.append((resp.status, resp.headers["Content-Type"], resp.read()))
            except urllib.error.HTTPError as exc:
                answers.append((exc.code, exc.headers["Content-Type"], exc.read()))

        clients = [threading.Thread(target=post, args=(s,)) for s in range(4)]
        for c in clients:
            c.start()
        deadline = time.monotonic() + 60
        while True:  # all four admitted, one of them running
            health = json.load(urllib.request.urlopen(url + "healthz", timeout=5))
            if (health["running"], health["queued"]) == (1, 3) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        assert proc.wait(30) == 130
        assert time.monotonic() - t0 < 3
        for c in clients:
            c.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err.seek(0)
    log = err.read()
    assert "Traceback" not in log and "Internal Server Error" not in log, log
    assert "interrupt received: finishing the running job and 3 queued (Ctrl-C again to stop at once)" in log
    assert len(answers) == 4
    for status, ctype, data in answers:
        assert (status, ctype) == (503, "application/json"), data
        assert json.loads(data) == {"error": "the server is shutting down; the job was cancelled"}
    assert list(out.iterdir()) == []
