"""What the README promises of the audit trail: each audited action, done through the
API, writes its record with the action, outcome, actor and resource it names.

The actions come from tests/actions.py, one per event type. Both the README's list
(PROMISED, kept here so that dropping an entry from AUDITED fails) and every entry of
AUDITED are tried: a newly audited event fails here until an action makes it happen.
"""

import pytest
from httpx import AsyncClient

from app.audit.records import AUDITED
from app.services import Services
from tests.actions import ACTIONS

# By event type: the action recorded, the kind of resource, the outcome.
AUDITED_BY_TYPE = {event.event_type: record for event, record in AUDITED.items()}

# The README: "registration, password changes, logins (success and failure), logouts,
# token refreshes and refresh-token reuse (denied), item create/update/delete, admins
# listing users or querying the trail, data exports and account erasures".
PROMISED = {
    "user.registered": ("user.register", "user", "success"),
    "user.password_changed": ("user.password_change", "user", "success"),
    "session.login_succeeded": ("session.login", "user", "success"),
    "session.login_failed": ("session.login", "user", "failed"),
    "session.logged_out": ("session.logout", "user", "success"),
    "session.token_refreshed": ("session.refresh", "user", "success"),
    "session.refresh_reuse_detected": ("session.refresh_reuse", "user", "denied"),
    "item.created": ("item.create", "item", "success"),
    "item.updated": ("item.update", "item", "success"),
    "item.deleted": ("item.delete", "item", "success"),
    "user.listed": ("user.list", "user", "success"),
    "audit.read": ("audit.read", "audit_log", "success"),
    "user.data_exported": ("user.export", "user", "success"),
    "user.erased": ("user.erase", "user", "success"),
}


def test_every_audited_event_has_an_action() -> None:
    assert sorted((set(PROMISED) | set(AUDITED_BY_TYPE)) - set(ACTIONS)) == []


@pytest.mark.parametrize("event_type", sorted(set(PROMISED) | set(AUDITED_BY_TYPE)))
async def test_each_audited_action_writes_its_record(
    client: AsyncClient, services: Services, event_type: str
) -> None:
    action, resource_type, outcome = PROMISED.get(event_type) or AUDITED_BY_TYPE[event_type]
    done = await ACTIONS[event_type](client, services)

    recent = await services.audit.recent(limit=100)
    entries = [record.entry for record in recent if record.entry.request_id == done.request_id]
    matching = [entry for entry in entries if (entry.action, entry.outcome) == (action, outcome)]
    assert len(matching) == 1, f"{action}/{outcome} expected, recorded: {entries}"
    (entry,) = matching
    assert (entry.actor, entry.resource_type) == (done.actor, resource_type)
    if done.resource_id is not None:
        assert entry.resource_id == done.resource_id
    assert entry.occurred_at.tzinfo is not None
