"""The application factory: `uvicorn app.main:app` serves it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from app.api import health
{%- if cookiecutter.api == "rest" %}
from app.api.rest import router as rest_router
{%- else %}
from app.api.graphql import create_router as create_graphql_router
{%- endif %}
from app.core.logging import configure_logging
from app.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.core.problems import install_problem_handlers
from app.services import build_services
from app.settings import Settings, get_settings

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(level=settings.app.log_level, json=settings.app.log_json)
    development = settings.app.environment == "development"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        await services.start()
        app.state.services = services
        log.info("started", environment=settings.app.environment)
        try:
            yield
        finally:
            await services.stop()
            log.info("stopped")

    app = FastAPI(
        title={{ cookiecutter.project_name | tojson }},
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if development else None,
        redoc_url=None,
    )
    # The last added runs first: request ids wrap everything, the size limit included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.app.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)
    app.include_router(health.router)
{%- if cookiecutter.api == "rest" %}
    app.include_router(rest_router)
{%- else %}
    app.include_router(create_graphql_router(ide=development))
{%- endif %}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


app = create_app()
