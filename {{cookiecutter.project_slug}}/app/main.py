"""The application factory: `uvicorn app.main:app` serves it."""

import gc
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from app import about
from app.api import health
from app.api.dependencies import bearer_token
{%- if cookiecutter.api == "rest" %}
from app.api.metrics import refresh_scrape_gauges
from app.api.responses import operation_id, publish_openapi
from app.api.rest import TAGS as API_TAGS
from app.api.rest import include_api
{%- if cookiecutter.compliance_logging %}
from app.api.rest.audit import TAGS as AUDIT_TAGS
from app.api.rest.audit import router as audit_router
{%- endif %}
{%- else %}
{%- if cookiecutter.compliance_logging %}
from app.api.graphql import audit as graphql_audit
{%- endif %}
from app.api.graphql import create_router as create_graphql_router
from app.api.metrics import refresh_scrape_gauges
from app.api.responses import operation_id, publish_openapi
{%- endif %}
{%- if cookiecutter.compliance_logging %}
from app.audit.masking import mask_personal_data, mask_text
{%- endif %}
from app.core.drain import Drain
from app.core.errors import UnauthorizedError
{%- if cookiecutter.api == "rest" %}
from app.core.idempotency import HEADER as IDEMPOTENCY_HEADER
{%- endif %}
from app.core.idempotency import REPLAYED_HEADER
from app.core.logging import configure_logging
from app.core.middleware import (
    BodySizeLimitMiddleware,
    HeadMiddleware,
    ProblemCORSMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from app.core.problems import install_problem_handlers
from app.core.rate_limit import RATE_LIMIT_HEADERS
from app.core.startup import ServiceUnreachableError, ensure_reachable, report
from app.observability.sentry import configure_sentry
from app.observability.tracing import configure_tracing, flush_tracing, instrument_app
from app.services import Services, build_services
from app.settings import Settings, get_settings

log = structlog.get_logger(__name__)
# The headers a browser's request to the API may carry, besides those CORS always allows.
REQUEST_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", "traceparent", "tracestate"]
# While the app serves, a young collection comes every 5000 new objects, not Python's
# 700. A request makes hundreds, nearly all freed by reference counting, and every young
# collection cost about 600 µs here: measured with the collector's callbacks on REST
# creates, 64 to 77 µs of collections a create at 700, about 10 at 5000.
YOUNG_OBJECTS = 5000


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
{%- if cookiecutter.compliance_logging %}
    configure_logging(
        level=settings.app.log_level, json=settings.app.log_json, redact=mask_personal_data
    )
    configure_sentry(settings, redact=mask_personal_data)
{%- else %}
    configure_logging(level=settings.app.log_level, json=settings.app.log_json)
    configure_sentry(settings)
{%- endif %}
    configure_tracing(settings)
    development = settings.app.environment == "development"
    docs = settings.app.serves_docs
    drain = Drain(settings.app.drain_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await ensure_reachable(settings)
        except ServiceUnreachableError as error:
            report(error)
            raise
        services = build_services(settings)
        await services.start()
        app.state.services = services
        drain.install()
        # What startup made lives as long as the app. Frozen, the garbage collector never
        # walks it again: a full collection, due about every thousand writes, otherwise
        # walked the whole heap (about 100 ms, a pause for every request in flight).
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_OBJECTS, *thresholds[1:])
        log.info("started", environment=settings.app.environment)
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            drain.uninstall()
            await services.stop()
            log.info("stopped")
            flush_tracing()

    app = FastAPI(
        # No redirect to the path with or without its trailing slash: Starlette builds
        # its Location from the request's Host header, a host the client chose.
        redirect_slashes=False,
        title=about.TITLE,
        description=about.DESCRIPTION,
        version=about.VERSION,
        contact=about.CONTACT,
        # Paths are relative to where the document is served from.
        servers=[{"url": "/", "description": "This deployment"}],
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        # FastAPI's own OpenTelemetry metrics and logs stay off: the service's metrics are
        # Prometheus's and its errors go to its own log, and with no provider configured
        # each request would still pay the environment lookups that find none.
        telemetry={"metrics": False, "logs": False},
    )
    app.state.drain = drain
    # The last added runs first: request ids wrap everything, the size limit included.
    app.add_middleware(HeadMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.app.max_body_bytes)
    app.add_middleware(
        ProblemCORSMiddleware,
        allow_origins=settings.app.cors_origins,
        # The methods and headers the API takes (test_security.py holds them to its routes),
        # W3C trace context included: a browser's traced call sends it.
{%- if cookiecutter.api == "rest" %}
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=[*REQUEST_HEADERS, IDEMPOTENCY_HEADER],
{%- else %}
        allow_methods=["GET", "HEAD", "POST"],
        allow_headers=REQUEST_HEADERS,
{%- endif %}
        expose_headers=["X-Request-ID", "Retry-After", *RATE_LIMIT_HEADERS, REPLAYED_HEADER],
        max_age=600,
    )
{%- if cookiecutter.compliance_logging %}
    app.add_middleware(RequestContextMiddleware, redact=mask_text)
{%- else %}
    app.add_middleware(RequestContextMiddleware)
{%- endif %}
    # Outermost, so even the last-resort 500 carries the headers.
    app.add_middleware(SecurityHeadersMiddleware)
    # Around all of them, while tracing is on: the request's server span.
    instrument_app(app)
    install_problem_handlers(app)
    app.include_router(health.router)
{%- if cookiecutter.api == "rest" %}
{%- if cookiecutter.compliance_logging %}
    include_api(app, audit_router)
    publish_openapi(app, tags=health.TAGS | API_TAGS | AUDIT_TAGS)
{%- else %}
    include_api(app)
    publish_openapi(app, tags=health.TAGS | API_TAGS)
{%- endif %}
{%- else %}
{%- if cookiecutter.compliance_logging %}
    audit_api = (graphql_audit.Query, graphql_audit.Mutation)
    app.include_router(create_graphql_router(audit_api, docs=docs))
{%- else %}
    app.include_router(create_graphql_router(docs=docs))
{%- endif %}
    publish_openapi(app, tags=health.TAGS)
{%- endif %}

    if settings.app.serves_asyncapi:

        @app.get("/asyncapi.json", include_in_schema=False)
        async def asyncapi(request: Request) -> dict[str, Any]:
            """The AsyncAPI document of the events, generated by FastStream, its server
            named after the environment it describes."""
            services: Services = request.app.state.services
            return services.bus.specification(environment=settings.app.environment)

    metrics_token = settings.metrics.token.get_secret_value().encode()

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not development:
            given = (bearer_token(request) or "").encode("latin-1")
            if not hmac.compare_digest(given, metrics_token):
                raise UnauthorizedError("The metrics need the metrics token as a bearer token.")
        await refresh_scrape_gauges(request.app.state.services)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
