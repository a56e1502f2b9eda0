"""The HTTP service (``copyscope serve``): guard API, registry API, web UI.

``create_app(settings)`` builds the application; nothing happens at import.
See docs/service.md.
"""
from __future__ import annotations


def create_app(settings, **kwargs):  # noqa: ANN001, ANN201 - re-exported lazily (FastAPI is a heavy import)
    from copyscope.service.app import create_app as _create  # noqa: PLC0415
    return _create(settings, **kwargs)


__all__ = ["create_app"]
