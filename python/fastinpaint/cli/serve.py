"""``fastinpaint serve``: the HTTP API and the browser editor (see :mod:`fastinpaint.serve`).

    fastinpaint serve [--host 127.0.0.1] [--port 8080] [--method patchmatch] [--device cpu|cuda]
                      [--input FILE|DIR] [--output-dir DIR] [--max-pixels N] [--open]

Prints the URL to open (the first line on stdout, so that scripts and tests can read it; with
``--port 0`` the system picks a free port and the URL says which).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from pathlib import Path
from typing import List

from fastinpaint.cli._common import CliError, check_device, int_argument, reports_user_errors


def _weights(paths: List[str]) -> List[str]:
    """The resolved path of each ``--weights`` file (a file given twice, once); clients choose a
    method's weights by the file's name (:func:`~fastinpaint.serve.app.sort_weights` checks that
    the names are unique within each method)."""
    chosen: List[str] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise CliError(f"weights file not found: {path}")
        if str(path.resolve()) not in chosen:
            chosen.append(str(path.resolve()))
    return chosen


def _port(text: str) -> int:
    """``--port``: a TCP port, 0 to 65535 (0: the system picks a free one), checked when the
    arguments are parsed (the socket layer would take 99999 modulo 65536, and a negative one as an
    unresolvable address)."""
    value = int_argument(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535 (0: a free port), got {value}")
    return value


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), bound here so that the URL printed
    is the real one and a port in use is reported as one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CliError(f"cannot resolve --host {host}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # every interface: this machine's own address opens it here
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _server(uvicorn, config, jobs):
    """A ``uvicorn.Server`` whose Ctrl-C handling knows the job queue: the first Ctrl-C says what it
    is waiting for (as ``fastinpaint train`` does), the second stops the queue at once
    (:meth:`~fastinpaint.serve.jobs.JobQueue.stop`: every client not answered yet gets a JSON 503,
    nothing more is saved)."""

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if sig == signal.SIGINT and not self.should_exit:
                if jobs.pending:
                    running, waiting = jobs.running, jobs.waiting
                    doing = "the running job" if running else "no running job"
                    _say(f"interrupt received: finishing {doing} and {waiting} queued "
                         "(Ctrl-C again to stop at once)")
            elif sig == signal.SIGINT and not self.force_exit:
                if jobs.pending:
                    _say(f"stopping at once: {jobs.pending} unanswered job(s) cancelled, nothing more saved")
                jobs.stop()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets=None):
            await super().shutdown(sockets)
            if self.force_exit and getattr(self, "lifespan", None) is not None:
                # uvicorn skips the application's shutdown when forced, and its lifespan task,
                # cancelled then at exit, logs a traceback; ours is quick (the queue is stopped)
                await self.lifespan.shutdown()

    return Server(config)


def _say(line: str) -> None:
    print(f"fastinpaint serve: {line}", file=sys.stderr, flush=True)


@reports_user_errors("fastinpaint")
def run(args: argparse.Namespace) -> int:
    """The ``serve`` subcommand: checks the options, binds, prints the URL, serves until Ctrl+C."""
    from fastinpaint.serve import missing_requirements

    missing = missing_requirements()
    if missing:
        raise CliError(f"fastinpaint serve needs {', '.join(missing)}: pip install 'fastinpaint[serve]'")
    check_device(args.device)
    inputs = Path(args.input) if args.input else None
    if inputs is not None and not inputs.exists():
        raise CliError(f"--input not found: {inputs}")
    output_dir = Path(args.output_dir) if args.output_dir else None
    if output_dir is not None:
        if output_dir.exists() and not output_dir.is_dir():
            raise CliError(f"--output-dir {output_dir} is a file, not a folder")
        output_dir.mkdir(parents=True, exist_ok=True)
    for name, value in (("--max-pixels", args.max_pixels), ("--max-body-mb", args.max_body_mb)):
        if value <= 0:
            raise CliError(f"{name} must be positive, got {value}")
    if args.queue_size < 0:
        raise CliError(f"--queue-size must be >= 0, got {args.queue_size}")

    import uvicorn

    from fastinpaint.serve.app import ServeConfig, create_app, is_loopback_address, sort_weights
    from fastinpaint.serve.decode import Limits

    try:  # each file under its method; the others left out
        weights, notes = sort_weights(_weights(args.weights))
    except ValueError as exc:  # two files of one method under one name
        raise CliError(str(exc)) from None
    for note in notes:
        print(f"fastinpaint serve: note: {note}", file=sys.stderr, flush=True)
    config = ServeConfig(device=args.device, default_method=args.method, inputs=inputs, output_dir=output_dir,
                         weights=weights,
                         limits=Limits(max_pixels=args.max_pixels, max_body_bytes=int(args.max_body_mb * 2**20)),
                         max_waiting=args.queue_size)
    sock = _bind(args.host, args.port)
    app = create_app(config)
    url = _url(sock)
    print(f"fastinpaint serve: open {url}", flush=True)
    if not is_loopback_address(sock.getsockname()[0]):
        print(f"fastinpaint serve: warning: listening on {args.host}: anyone who can reach this machine on port "
              f"{sock.getsockname()[1]} can use this server (no authentication)", file=sys.stderr, flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)  # the socket already listens: the browser's request waits for the server
    jobs = app.state.jobs
    server = _server(uvicorn, uvicorn.Config(app, log_level=args.log_level, access_log=args.log_level == "debug"),
                     jobs)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if jobs.stopping and jobs.running:
            # stopped at once with a job still computing on the worker thread, which cannot be
            # interrupted and which the interpreter would wait for at exit: its result is dropped
            # anyway (every client was answered 503 and nothing more is saved), so leave now
            _say("interrupted")
            sys.stdout.flush()
            os._exit(130)
    return 0


def add_subcommand(subparsers, methods: List[str]) -> argparse.ArgumentParser:
    """Adds ``serve`` to an ``argparse`` subparsers object; ``methods``: the ``--method`` choices."""
    p = subparsers.add_parser(
        "serve",
        help="HTTP API (IOPaint-compatible) and a browser editor: paint a mask, see the fill",
        description=(
            "Serve an HTTP API (POST /api/v1/inpaint, compatible with IOPaint's) and a browser editor to paint "
            "the hole (and optionally where the fill may copy from) and see the fill. Listens on the loopback "
            "interface by default: only this machine can connect. --host 0.0.0.0 lets anyone who can reach this "
            "machine use it, without authentication."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0: a free one, printed)")
    p.add_argument("--method", default="patchmatch", choices=methods,
                   help="the page's default method (default: patchmatch)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to compute (default cpu)")
    p.add_argument("--input", help="an image file, or a folder whose images the page lists (by name only)")
    p.add_argument("--output-dir", help="also save every result in this folder (names chosen by the server)")
    p.add_argument("--weights", action="append", default=[], metavar="FILE",
                   help="a checkpoint clients may pick, by its file name (unique within a method), for the method it "
                        "is for (pconv or glcic, "
                        "told from its header at start-up; other files are left out with a note) (repeatable)")
    p.add_argument("--max-pixels", type=int, default=50_000_000,
                   help="largest image, width x height (default 50 MP); the one limit: Pillow's decompression-bomb "
                        "guard is set from it while reading, so it may exceed Pillow's default")
    p.add_argument("--max-body-mb", type=float, default=256, help="largest request body in MiB (default 256)")
    p.add_argument("--queue-size", type=int, default=8,
                   help="requests that may wait behind the running one, each holding its image in memory; "
                        "more are answered 503 (default 8)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="server log level (default warning)")
    p.set_defaults(func=run)
    return p
