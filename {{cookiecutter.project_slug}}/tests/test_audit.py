"""The audit trail records audited actions, sealed in a verifiable chain."""

import io
import json
import logging
from uuid import uuid4

import structlog

from app.audit.masking import mask_personal_data
from app.audit.records import GENESIS, AuditEntry, SealedEntry, seal, verify_chain
from app.core.context import RequestContext, set_current_request
from app.core.logging import configure_logging
from app.items import service
from app.items.schemas import ItemCreate
from app.services import Services
from tests.conftest import Account, unique


async def test_creating_an_item_is_audited(services: Services, account: Account) -> None:
    request_id = uuid4().hex
    set_current_request(
        RequestContext(
            request_id=request_id,
            client_ip="203.0.113.7",
            user_agent="audit-test",
            actor_id=str(account.user.id),
        )
    )
    try:
        item = await service.create_item(
            database=services.database,
            owner=account.principal,
            data=ItemCreate(name=unique("audited")),
        )
    finally:
        set_current_request(None)

    records = await services.audit.recent(limit=50)
    (record,) = [r for r in records if r.entry.request_id == request_id]
    entry = record.entry
    assert (entry.action, entry.resource_type, entry.resource_id) == (
        "item.create",
        "item",
        str(item.id),
    )
    assert (entry.outcome, entry.actor) == ("success", str(account.user.id))
    assert (entry.client_ip, entry.user_agent) == ("203.0.113.7", "audit-test")
    assert entry.occurred_at.tzinfo is not None

    report = await services.audit.verify()
    assert report.intact
    assert report.checked >= 1


def _chain(key: bytes, count: int) -> list[SealedEntry]:
    records, previous = [], GENESIS
    for sequence in range(1, count + 1):
        entry = AuditEntry(action="item.create", resource_type="item", resource_id=str(sequence))
        current = seal(key, previous, entry)
        records.append(SealedEntry(sequence, entry, previous, current))
        previous = current
    return records


def test_verify_finds_the_first_edited_record() -> None:
    key = b"k" * 32
    records = _chain(key, 5)
    assert verify_chain(key, records).intact

    edited = records[2].entry.model_copy(update={"actor": "mallory"})
    records[2] = SealedEntry(3, edited, records[2].previous, records[2].seal)
    report = verify_chain(key, records)
    assert (report.intact, report.first_broken, report.checked) == (False, 3, 2)


def test_verify_finds_a_deleted_record_and_a_wrong_key() -> None:
    key = b"k" * 32
    records = _chain(key, 4)
    assert verify_chain(key, [*records[:1], *records[2:]]).first_broken == 3
    assert verify_chain(b"x" * 32, records).first_broken == 1


def test_personal_data_is_masked_in_real_log_output() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream, redact=mask_personal_data)
    try:
        logging.getLogger("app.test").warning(
            "contact kim.minji@example.co.kr or +82 10-1234-5678, rrn 900101-1234567, "
            "card 4111 1111 1111 1111, order 1234567812345678, header Bearer abc.def-ghi"
        )
        structlog.get_logger("app.test").info(
            "signup", email="Jane.Doe@example.com", password="hunter2-secret!", attempts=3
        )
        try:
            raise ValueError("cannot charge 5500-0000-0000-0004 for lee@example.org")
        except ValueError:
            logging.getLogger("app.test").exception("payment failed")
    finally:
        configure_logging(level="INFO", json=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    for secret in (
        "kim.minji@example.co.kr",
        "1234-5678",
        "900101-1234567",
        "4111 1111 1111 1111",
        "abc.def-ghi",
        "Jane.Doe@example.com",
        "hunter2",
        "5500-0000-0000-0004",
        "lee@example.org",
    ):
        assert secret not in text, secret
    assert "order 1234567812345678" in lines[0]["event"]  # not Luhn-valid: not a card
    assert "[rrn]" in lines[0]["event"]
    assert "[card]" in lines[0]["event"]
    assert (lines[1]["password"], lines[1]["attempts"]) == ("[redacted]", 3)
    assert "[email]" in lines[2]["exception"]
