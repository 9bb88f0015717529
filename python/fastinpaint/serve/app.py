"""The ASGI application of ``fastinpaint serve`` (Starlette): the HTTP API and the editor page.

Routes (see :func:`create_app`):

- ``GET /``, ``GET /static/...``: the editor page (plain HTML/CSS/JS files of this package);
- ``POST /api/v1/inpaint``: JSON ``{"image": base64, "mask": base64, ...}`` as IOPaint's clients
  send it, or ``multipart/form-data`` with ``image`` and ``mask`` files; answers the filled image in
  the input's format;
- ``GET /api/v1/server-config``, ``GET /api/v1/methods``, ``GET /healthz``;
- ``GET /api/v1/inputs`` and ``GET /api/v1/inputs/{name}``: the images of the ``--input`` folder,
  by name only.

Errors are JSON ``{"error": "one line"}`` with 400 (unreadable or inconsistent request), 404 (no
such endpoint under ``/api/``), 405 (a method the endpoint does not take; ``Allow`` says which),
413 (too large), 415 (body neither JSON nor multipart), 503 (queue full, or the server stopping
at once: a second Ctrl-C cancels the jobs not answered yet, which save nothing) or 500 (the method
failed; the server goes on serving).

With ``--output-dir`` each result is also saved there under a new name the server chooses
(``X-FastInpaint-Saved-As``; never replacing a file, also one another server sharing the folder
wrote). A result that cannot be saved (folder removed, disk full, ...) is still answered, 200 with
the image, since it was computed; ``X-FastInpaint-Not-Saved: could not save the result to DIR:
why`` says so (and the log): the method did not fail, and the client keeps what it asked for.

No endpoint reads or writes a path that the client names.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import fastinpaint
from fastinpaint.cli._common import is_image_file
from fastinpaint.io import ImageIOError, OutputExistsError, write_file
from fastinpaint.methods.patchmatch import PATCH_SIZES
from fastinpaint.serve.decode import (NO_SOURCE_MASK, Limits, RequestError, decode_request, encode_result,
                                     header_value)
from fastinpaint.serve.jobs import JobQueue, QueueFull, ShuttingDown

STATIC = Path(__file__).resolve().parent / "static"
#: Names tried for one result in --output-dir before giving up (each taken one: another writer's).
_SAVE_ATTEMPTS = 1000
log = logging.getLogger("fastinpaint.serve")


#: The names a browser on this machine uses for a server on loopback.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback_address(address) -> bool:
    """Whether ``address`` (text) is a loopback IP address (IPv4-mapped IPv6 included)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:  # a Unix socket's path, a test client's "testserver"
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 (a dual-stack socket)
    return (mapped or ip).is_loopback


def _host_name(host: str) -> str:
    """The name of a Host header, port aside: ``[::1]:8080`` -> ``::1``, ``localhost:8080`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LoopbackHostCheck:
    """ASGI middleware: on a connection that arrived at a loopback address (the ASGI scope's
    ``server``), only requests whose Host header names ``allowed`` or a loopback address (port
    aside) are answered; others get a JSON 400. A web page whose own name was re-pointed at
    127.0.0.1 (DNS rebinding) thus cannot read this server's answers or the --input images from
    the user's browser. Part of the application,
    so every way of running it has it (``fastinpaint serve``, ``uvicorn --factory``, ...);
    connections to other addresses (``--host 0.0.0.0`` reached from another machine) are not
    checked: any name may lead there."""

    def __init__(self, app, allowed: Sequence[str]):
        self.app = app
        self.allowed = {_host_name(h) for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and is_loopback_address((scope.get("server") or ("",))[0]):
            host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
            name = _host_name(host)
            if name not in self.allowed and not is_loopback_address(name):  # 127.0.0.2: no name to re-point
                names = ", ".join(f"[{h}]" if ":" in h else h for h in sorted(self.allowed))
                response = _json_error(400, f"Host {host!r} is not accepted: on loopback this server answers only "
                                            f"requests addressed to {names}")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class ServeConfig:
    """What ``fastinpaint serve`` was started with (its command-line options)."""

    device: str = "cpu"
    default_method: str = "patchmatch"
    #: an image file or a folder of images offered to the page by name (``--input``)
    inputs: Optional[Path] = None
    #: where every result is also saved, under a name the server chooses (``--output-dir``)
    output_dir: Optional[Path] = None
    #: method -> {name: path} of the weights files a client may choose for it (``--weights``,
    #: sorted by :func:`sort_weights`); names are unique within a method. :func:`create_app`
    #: checks each file's header (:func:`check_weights`), however the config was made
    weights: Dict[str, Dict[str, str]] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    #: The Host names (port aside) accepted on a connection that arrived at a loopback address
    #: (see :class:`LoopbackHostCheck`); None: any, e.g. behind a reverse proxy on this machine that
    #: forwards the client's own Host header.
    allowed_hosts: Optional[List[str]] = field(default_factory=lambda: list(LOOPBACK_HOSTS))
    #: jobs that may wait behind the running one before requests are refused with 503 (each holds
    #: its decoded image: this bounds the memory)
    max_waiting: int = 8


#: The learned methods: the network whose checkpoint files each takes (as
#: :func:`fastinpaint.nn._checkpoint.network_of` names it).
LEARNED_METHODS = {"pconv": "PConvUNet", "glcic": "GLCIC"}
#: ... and the other way: the method each network's files are for.
_METHOD_OF_NETWORK = {network: method for method, network in LEARNED_METHODS.items()}


def sort_weights(files) -> Tuple[Dict[str, Dict[str, str]], List[str]]:
    """(``ServeConfig.weights``, notes): the weights files (paths, each offered under its file's
    name; or name -> path) under the method each is for, told from its header as the loaders tell
    it (:func:`~fastinpaint.nn._checkpoint.network_of`: the tensors are not read, so this is cheap at
    start-up), and a one-line note for each file left out (not a checkpoint of a network this
    server runs), saying why. A client chooses a name for a method, so names need only be unique
    within one: ``runs/A/model.pt`` (pconv) and ``runs/G/model.pt`` (glcic) are both offered;
    ValueError, one line, for two files of one method under one name."""
    from fastinpaint.nn._checkpoint import network_of

    pairs = files.items() if isinstance(files, Mapping) else ((Path(p).name, str(p)) for p in files)
    by_method: Dict[str, Dict[str, str]] = {}
    notes: List[str] = []
    for name, path in pairs:
        try:
            network = network_of(path)
        except (OSError, ValueError) as exc:
            notes.append(f"--weights {name} left out: {' '.join(str(exc).split())}")
            continue
        method = _METHOD_OF_NETWORK[network]
        mine = by_method.setdefault(method, {})
        if name in mine and mine[name] != path:
            raise ValueError(f"two --weights files for method {method} are named {name} ({mine[name]} "
                             f"and {path}); clients choose a method's weights by name, so rename one")
        mine[name] = path
    return by_method, notes


def check_weights(weights: Dict[str, Dict[str, str]]) -> None:
    """Raises ValueError, in one line naming the entry, unless ``weights`` (``ServeConfig.weights``)
    is method -> {name: path} for the learned methods, each file a checkpoint of its method's
    network, told from its header as :func:`sort_weights` tells it: a missing, unreadable or other
    network's file given in code failed only at the first request that chose it, as a 500.
    :func:`create_app` calls it, so every way of building the app checks at start-up."""
    from fastinpaint.nn._checkpoint import network_of

    unknown = [m for m in weights if m not in LEARNED_METHODS]
    if unknown:
        raise ValueError(f"ServeConfig.weights is method -> {{name: path}} for {', '.join(LEARNED_METHODS)}; "
                         f"got {', '.join(map(repr, unknown))} (sort_weights sorts files by method)")
    for method, files in weights.items():
        for name, path in files.items():
            entry = f"ServeConfig.weights[{method!r}][{name!r}]"
            try:
                network = network_of(path)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{entry}: {' '.join(str(exc).split())}") from None
            if network != LEARNED_METHODS[method]:
                raise ValueError(f"{entry}: {path} is a {network} checkpoint, for method "
                                 f"{_METHOD_OF_NETWORK[network]!r}, not {method!r} "
                                 f"(sort_weights sorts files by method)")


#: Each method's options as the page shows them (the request fields of the same names).
def _method_options(name: str, weights: Sequence[str]) -> dict:
    opts: dict = {"seed": {"type": "int", "default": 0}}
    if name == "patchmatch":
        opts["patch_size"] = {"type": "int", "default": 7, "min": PATCH_SIZES[0], "max": PATCH_SIZES[1],
                              "odd": True}
    if name in ("pconv", "glcic"):
        opts["weights"] = {"type": "choice", "default": "", "choices": ["", *weights],
                           "labels": {"": "bundled"}}
    return {"name": name, "options": opts, "source_mask": name not in NO_SOURCE_MASK}


def _json_error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


#: Paths whose errors are JSON ``{"error": ...}`` whoever raises them (the router's 404 and 405
#: included); the page's own paths (``/``, ``/static/...``) answer Starlette's plain text.
_API_PATHS = ("/api/", "/healthz")


def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTPException (no route: 404; a route without this method: 405, with its
    ``Allow`` header) as JSON on the API's paths."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "error"
    headers = getattr(exc, "headers", None)
    if not request.url.path.startswith(_API_PATHS):
        return PlainTextResponse(detail, status_code=status, headers=headers)
    if status == 404:
        message = f"no API endpoint {request.url.path}"
    elif status == 405:
        allowed = (headers or {}).get("Allow") or (headers or {}).get("allow")
        message = f"method {request.method} is not allowed on {request.url.path}"
        message += f"; use {allowed}" if allowed else ""
    else:
        message = " ".join(str(detail).split())
    return _json_error(status, message, headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes: from
    Content-Length before reading anything, else (chunked uploads) while reading."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {int(declared)} bytes exceeds this server's limit of {limit} bytes")
    chunks: List[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body exceeds this server's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _request_fields(request: Request, limit: int):
    """(fields, files) of a JSON or multipart request."""
    body = await _read_body(request, limit)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        async def replay():  # the body is read already (and size-checked): hand it to the parser
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_part_size=limit)
        except Exception as exc:  # python-multipart / Starlette parse errors (HTTPException 400 included)
            raise RequestError(400, f"malformed multipart/form-data body: {getattr(exc, 'detail', exc)}") from None
        fields, files = {}, {}
        for key, value in form.multi_items():
            if key in files or key in fields:  # which one was meant? say so rather than pick one
                await form.close()
                raise RequestError(400, f"field '{key}' is sent more than once; send each field once")
            if hasattr(value, "read"):  # an uploaded file
                files[key] = await value.read()
            else:
                fields[key] = value
        await form.close()
        return fields, files
    if ctype in ("application/json", "") or ctype.endswith("+json"):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"request body is not valid JSON ({exc})") from None
        except RecursionError:  # [[[[... deeper than the parser's stack: not a request of this API
            raise RequestError(400, "request body is not valid JSON (nested too deeply)") from None
        if not isinstance(data, dict):
            raise RequestError(400, "request body must be a JSON object with 'image' and 'mask' fields")
        return data, {}
    raise RequestError(415, f"unsupported Content-Type {ctype!r}; send application/json or multipart/form-data")


def _input_images(inputs: Optional[Path]) -> Dict[str, Path]:
    """name -> file of the images offered by ``--input``: the file itself, or the image files
    directly in the folder (not below it), links leading out of it excluded."""
    if inputs is None:
        return {}
    if inputs.is_file():
        return {inputs.name: inputs}
    found = {}
    root = inputs.resolve()
    try:
        entries = sorted(os.scandir(inputs), key=lambda e: e.name)
    except OSError:
        return {}
    for entry in entries:
        path = Path(entry.path)
        if is_image_file(path) and path.resolve().parent == root:
            found[entry.name] = path
    return found


def create_app(config: Optional[ServeConfig] = None) -> Starlette:
    """The application; ``app.state.jobs`` is its :class:`~fastinpaint.serve.jobs.JobQueue`.
    ValueError, one line, for a config it cannot serve: an unknown default method, a weights file
    :func:`check_weights` refuses."""
    config = config or ServeConfig()
    methods = fastinpaint.available_methods()
    if config.default_method not in methods:
        raise ValueError(f"unknown method {config.default_method!r}; available: {', '.join(methods)}")
    check_weights(config.weights)
    jobs = JobQueue(config.max_waiting)
    counter = {"saved": 0}

    def server_config(request: Request) -> JSONResponse:
        return JSONResponse({
            "version": fastinpaint.__version__,
            "device": config.device,
            "default_method": config.default_method,
            "methods": [_method_options(m, list(config.weights.get(m, {}))) for m in methods],
            # IOPaint's names and fastinpaint's Auto, as the API takes them (any case); Crop = Auto
            "hd_strategies": ["Crop", "Original", "Resize", "Auto"],
            "limits": {"max_pixels": config.limits.max_pixels, "max_body_bytes": config.limits.max_body_bytes,
                       "max_waiting": config.max_waiting},
            "inputs": list(_input_images(config.inputs)),
            "saves_results": config.output_dir is not None,
        })

    def list_methods(request: Request) -> JSONResponse:
        return JSONResponse({"methods": list(methods), "default": config.default_method})

    def healthz(request: Request) -> JSONResponse:
        # "queued": the jobs waiting (not the running one, counted apart)
        return JSONResponse({"status": "ok", "running": jobs.running, "queued": jobs.waiting})

    def list_inputs(request: Request) -> JSONResponse:
        return JSONResponse({"images": list(_input_images(config.inputs))})

    def get_input(request: Request) -> Response:
        # Only a name from the listing is served: a path (../, absolute, encoded) is simply not one.
        name = request.path_params["name"]
        path = _input_images(config.inputs).get(name)
        if path is None:
            return _json_error(404, f"no input image named {name!r}")
        return FileResponse(path)

    def index(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def save_result(data: bytes, fmt_ext: str) -> str:
        """Saves a result in --output-dir under a new name, returned: ``fastinpaint-<second>-<n>``
        published by io's step that fails on a taken name (another server, or another process, may
        share the folder), the next ``n`` then. Only the worker thread calls this: no race within
        this server. Raises ImageIOError "could not save the result to DIR: why"."""
        assert config.output_dir is not None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for _ in range(_SAVE_ATTEMPTS):
            counter["saved"] += 1
            out = config.output_dir / f"fastinpaint-{stamp}-{counter['saved']:04d}.{fmt_ext}"
            try:
                write_file(data, out)
                return out.name
            except OutputExistsError:
                continue
            except ImageIOError as exc:
                why = str(exc).removeprefix(f"cannot write {out}: ")
                raise ImageIOError(f"could not save the result to {config.output_dir}: {why}") from None
        raise ImageIOError(f"could not save the result to {config.output_dir}: {_SAVE_ATTEMPTS} names in a row "
                           f"were taken ({out.name} the last)")

    async def inpaint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            fields, files = await _request_fields(request, config.limits.max_body_bytes)
        except RequestError as err:
            return _json_error(err.status, err.message)

        def decode():  # on a thread, once the request has a place in the queue
            return decode_request(fields, files, methods=methods, default_method=config.default_method,
                                  weights=config.weights, limits=config.limits)

        def work(job):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty mask: the image comes back unchanged, as asked
                result = fastinpaint.inpaint(job.image.pixels, job.hole, method=job.method, seed=job.seed,
                                             source_mask=job.source, device=config.device, **job.options)
            data, ctype = encode_result(result, job.image, job.notes)
            saved = not_saved = None
            if config.output_dir and not jobs.stopping:  # a cancelled job (second Ctrl-C) saves nothing
                # not the method's failure: the result is answered all the same, the header says
                # it was not saved (see the module docstring)
                try:
                    saved = save_result(data, ctype.split("/")[1].replace("jpeg", "jpg"))
                except ImageIOError as exc:
                    not_saved = str(exc)
                    log.error("%s", not_saved)
            return job, data, ctype, saved, not_saved

        try:
            job, data, ctype, saved, not_saved = await jobs.run(work, decode)
        except RequestError as err:
            return _json_error(err.status, err.message)
        except QueueFull as exc:
            return _json_error(503, str(exc), {"Retry-After": "5"})
        except ShuttingDown as exc:
            return _json_error(503, str(exc))
        except Exception as exc:  # the method failed: report it, keep serving
            method = fields.get("method") or config.default_method
            log.exception("method %r failed", method)
            message = " ".join(str(exc).split()) or type(exc).__name__
            return _json_error(500, f"method {method!r} failed: {message}")
        headers = dict(job.response_headers)
        headers["X-Seed"] = str(job.seed)  # as IOPaint answers
        headers["X-FastInpaint-Method"] = job.method
        headers["X-FastInpaint-Seconds"] = f"{time.perf_counter() - started:.3f}"
        if job.notes:  # one line, ASCII: what the command line prints as notes
            headers["X-FastInpaint-Notes"] = header_value("; ".join(job.notes))
        if saved:
            headers["X-FastInpaint-Saved-As"] = saved
        if not_saved:
            headers["X-FastInpaint-Not-Saved"] = header_value(not_saved)
        return Response(data, media_type=ctype, headers=headers)

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/v1/server-config", server_config),
        Route("/api/v1/methods", list_methods),
        Route("/api/v1/inpaint", inpaint, methods=["POST"]),
        Route("/api/v1/inputs", list_inputs),
        Route("/api/v1/inputs/{name:path}", get_input),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        jobs.shutdown()

    middleware = [] if config.allowed_hosts is None else [
        Middleware(LoopbackHostCheck, allowed=config.allowed_hosts)]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: _http_error})
    app.state.jobs = jobs
    app.state.config = config
    return app
