"""Tripwires for the BentoML and uvicorn internals the HTTP stack relies on.

Each test names what would silently break on an upgrade; when one fails, re-check the module
it names (``serving/errors.py``, ``serving/protocol.py``, ``serving/http_stack.py``) against
the new version, then move the range.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from packaging.version import Version

BENTOML_RANGE = (Version("1.4.0"), Version("1.5.0"))
UVICORN_RANGE = (Version("0.30.0"), Version("0.60.0"))


def _within(package: str, bounds: tuple[Version, Version]) -> None:
    installed = Version(version(package))
    low, high = bounds
    assert low <= installed < high, f"{package} {installed} is outside [{low}, {high})"


def test_bentoml_is_the_series_the_stack_was_written_for() -> None:
    _within("bentoml", BENTOML_RANGE)


def test_uvicorn_is_the_series_the_protocol_was_written_for() -> None:
    _within("uvicorn", UVICORN_RANGE)


def test_bentoml_validation_answer_is_the_shape_reshape_reads() -> None:
    """errors.reshape keeps the locations of BentoML's private 400 (``detail``: pydantic
    errors, no input); any other shape falls back to a bare ``body`` field."""
    from _bentoml_impl.server.app import ServiceAppFactory

    source = inspect.getsource(ServiceAppFactory.api_endpoint_wrapper)
    assert '"detail": exc.errors(include_context=False, include_input=False)' in source
    assert "status_code=400" in source


def test_bentoml_user_middlewares_sit_inside_its_traffic_middlewares() -> None:
    """Why the stack has its own 503 and 504 (overload.py): BentoML's max_concurrency and
    timeout answer from outside every ``add_asgi_middleware`` middleware, where no shaping
    can reach; and why its metrics are switched off (metrics.py)."""
    from _bentoml_impl.server.app import ServiceAppFactory

    source = inspect.getsource(ServiceAppFactory.middlewares.fget)
    assert source.index("super().middlewares") < source.index("self.service.middlewares")
    assert "if self.enable_metrics:" in source


def test_worker_builds_uvicorn_config_after_importing_the_service() -> None:
    """protocol.install runs at service import and must precede ``uvicorn.Config`` with the
    default ``http="auto"``."""
    from _bentoml_impl.worker import service as worker

    source = inspect.getsource(worker.main.callback)  # a click command
    assert source.index("load(bento_identifier") < source.index("uvicorn.Config(")
    config_call = source[source.index("uvicorn.Config(") :]
    assert "http=" not in config_call[: config_call.index("uvicorn.Server")]


def test_uvicorn_protocol_hooks_exist() -> None:
    import uvicorn.config
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert AutoHTTPProtocol is HttpToolsProtocol  # httptools is installed, so "auto" is it
    assert "auto" in uvicorn.config.HTTP_PROTOCOLS
    for hook in (
        "connection_made",
        "connection_lost",
        "on_message_begin",
        "on_headers_complete",
        "send_400_response",
    ):
        assert callable(getattr(HttpToolsProtocol, hook, None)), hook
    assert "self.loop" in inspect.getsource(HttpToolsProtocol.__init__)


def test_install_points_uvicorn_auto_at_the_header_timeout_protocol() -> None:
    import uvicorn.config
    from uvicorn.importer import import_from_string

    from shiprisk.serving import protocol

    before = uvicorn.config.HTTP_PROTOCOLS["auto"]
    try:
        protocol.install(3.0)
        cls = import_from_string(uvicorn.config.HTTP_PROTOCOLS["auto"])
        assert cls is protocol.HeaderTimeoutProtocol and cls.header_timeout == 3.0
    finally:
        uvicorn.config.HTTP_PROTOCOLS["auto"] = before
