"""``fastinpaint serve``: an HTTP API compatible with IOPaint's ``POST /api/v1/inpaint``, and a
browser editor (paint the hole, optionally the source region, run, compare, download).

Modules: :mod:`~fastinpaint.serve.app` (the Starlette application, :func:`create_app`),
:mod:`~fastinpaint.serve.jobs` (one inference at a time per device, bounded queue),
:mod:`~fastinpaint.serve.decode` (request fields to images and masks, results to bytes), and
``static/`` (the page: plain HTML, CSS and JavaScript, no build step, nothing fetched at run time).

Needs the ``serve`` extra (``pip install 'fastinpaint[serve]'``: Starlette, uvicorn,
python-multipart); ``import fastinpaint`` does not import this package.
"""

from __future__ import annotations

#: The packages the server needs (import names, any of which will do; pip name); the command line
#: checks them first. python-multipart is ``python_multipart`` since 0.0.13, ``multipart`` before.
REQUIREMENTS = ((("starlette",), "starlette"), (("uvicorn",), "uvicorn"),
                (("python_multipart", "multipart"), "python-multipart"))


def missing_requirements():
    """The pip names of the server's dependencies that cannot be imported here."""
    import importlib.util

    return [pip for modules, pip in REQUIREMENTS if not any(importlib.util.find_spec(m) for m in modules)]


def create_app(config=None):
    """The ASGI application (see :func:`fastinpaint.serve.app.create_app`)."""
    from fastinpaint.serve.app import create_app as _create_app

    return _create_app(config)
