"""Consumers of domain events. They know events and Redis, never the broker."""

from app.events.bus import Subscription
from app.events.schemas import ItemCreated
from app.storage.cache import Cache

ACTIVITY_LENGTH = 100


class ActivityFeed:
    """A read model of recent activity, fed by events."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("activity-feed", ItemCreated, self.on_item_created)]

    async def on_item_created(self, event: ItemCreated) -> None:
        await self.cache.push_recent(
            "activity", f"{event.event_type} {event.item_id}", keep=ACTIVITY_LENGTH
        )

    async def recent(self) -> list[str]:
        return await self.cache.recent("activity")
