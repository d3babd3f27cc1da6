"""The audit trail in the metrics: records appended, and the last verification's time
and result, which the verify command (a process of its own) leaves for the service."""

import time

from httpx import AsyncClient
from prometheus_client import REGISTRY

from app.audit.__main__ import verify
from app.audit.metrics import VERIFICATION_KEY
from app.services import Services
from app.settings import Settings
from tests.conftest import new_account
from tests.test_metrics import scrape


async def test_audited_actions_count_their_appended_records(services: Services) -> None:
    before = REGISTRY.get_sample_value("audit_records_appended_total") or 0
    await new_account(services)  # a registration is audited
    assert (REGISTRY.get_sample_value("audit_records_appended_total") or 0) > before


async def test_the_last_verification_is_reported_at_scrape(
    client: AsyncClient, settings: Settings, services: Services
) -> None:
    started = time.time()
    code = await verify(services, [])
    result = "intact" if code == 0 else "broken"
    await scrape(client, settings)
    when = REGISTRY.get_sample_value(
        "audit_last_verification_timestamp_seconds", {"result": result}
    )
    assert when is not None
    assert when >= started
    # One series: the last result only.
    other = "broken" if result == "intact" else "intact"
    labels = {"result": other}
    assert REGISTRY.get_sample_value("audit_last_verification_timestamp_seconds", labels) is None


async def test_a_lost_verification_result_is_no_longer_reported(
    client: AsyncClient, settings: Settings, services: Services
) -> None:
    """Once Redis no longer holds the result (restarted without persistence, say), the
    gauge is absent, as the missing-verification alert expects: it kept the last value
    it had read, which looked recent for as long as the process lived."""

    def reported() -> list[float | None]:
        return [
            REGISTRY.get_sample_value("audit_last_verification_timestamp_seconds", labels)
            for labels in ({"result": "intact"}, {"result": "broken"})
        ]

    await verify(services, [])
    await scrape(client, settings)
    assert any(reported())
    await services.cache.redis.delete(services.cache.key(VERIFICATION_KEY))
    await scrape(client, settings)
    assert reported() == [None, None]
