"""The sealer: chains appended audit records, and anchors the chain outside the database.

Every instance runs one; one at a time does the work (see the storage's lease). Each
round seals up to `AUDIT_SEAL_BATCH_SIZE` committed records, then keeps a signed
checkpoint of the new head in Redis (read by `python -m app.audit verify` by default).
At most every `AUDIT_CHECKPOINT_SECONDS`, when the head moved, the checkpoint also goes
to the broker (event `audit.checkpoint`, through the outbox) and to the log (one line,
`audit_checkpoint`, with the checkpoint as a token `verify --checkpoint` accepts).

Before extending the chain, the sealer checks that the stored chain still reaches the
last head it knows (its own last round, or the checkpoint in Redis): a chain cut short
behind its back is refused, not extended, so the cut stays visible.
"""

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog
from prometheus_client import Counter, Gauge

from app.audit.events import AuditCheckpointed
from app.audit.records import AuditLog, ChainTruncatedError, Checkpoint, Head, SealRound
from app.core.errors import REDIS_DOWN
from app.settings import AuditSettings
from app.storage.cache import Cache
from app.storage.unit_of_work import Database

CHECKPOINT_KEY = "audit:checkpoint"
SEALED = Counter("audit_sealed_total", "Audit records sealed into the chain.")
HEAD = Gauge("audit_chain_head_position", "Position of the newest sealed audit record.")
UNSEALED_AGE = Gauge(
    "audit_unsealed_oldest_age_seconds",
    "Age of the oldest audit record not sealed yet (0: none). Past AUDIT_WINDOW_SECONDS it "
    "could be removed unseen: the sealer is not running, or its turn is held elsewhere.",
)
log = structlog.get_logger(__name__)


async def stored_checkpoint(cache: Cache) -> Checkpoint | None:
    """The checkpoint kept in Redis, or None (none yet, or Redis unreachable)."""
    try:
        raw = await cache.redis.get(cache.key(CHECKPOINT_KEY))
    except REDIS_DOWN:
        log.warning("audit_checkpoint_unavailable", reason="redis unavailable")
        return None
    return Checkpoint.parse(str(raw)) if raw else None


async def publish_checkpoint(
    checkpoint: Checkpoint, *, database: Database, cache: Cache, broker: bool = True
) -> None:
    """Keep a checkpoint outside the database: Redis always; the broker and the log when
    `broker` (the event goes through the outbox, like every other event)."""
    try:
        await cache.redis.set(cache.key(CHECKPOINT_KEY), checkpoint.token())
    except REDIS_DOWN:
        log.warning("audit_checkpoint_not_stored", reason="redis unavailable")
    if broker:
        async with database.unit_of_work() as uow:
            uow.emit(AuditCheckpointed.of(checkpoint))
        log.info(
            "audit_checkpoint",
            position=checkpoint.position,
            purged_through=checkpoint.purged_through,
            checkpoint=checkpoint.token(),
        )


class AuditSealer:
    def __init__(
        self,
        audit: AuditLog,
        *,
        database: Database,
        cache: Cache,
        settings: AuditSettings,
        key: bytes,
    ) -> None:
        self.audit = audit
        self.database = database
        self.cache = cache
        self.settings = settings
        self.key = key
        # The newest head this instance sealed, and the one whose checkpoint it has not
        # broadcast yet. A head it did not seal (another instance's, or a row put there
        # behind the service's back) is never signed: a checkpoint vouches for records
        # whose seals were made with the key.
        self.head: Head | None = None
        self._unannounced: Head | None = None
        self._broadcast_at = 0.0
        self._stalled_logged_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def _expected(self) -> Head | None:
        """The newest head known outside the table: the chain must still reach it."""
        known = [self.head] if self.head else []
        checkpoint = await stored_checkpoint(self.cache)
        if checkpoint is not None and checkpoint.authentic(self.key):
            known.append(Head(checkpoint.position, checkpoint.seal))
        return max(known, key=lambda head: head.position, default=None)

    async def run_once(self) -> SealRound | None:
        """Seal what is pending; None while another instance is sealing."""
        expect = await self._expected()
        sealed = 0
        while True:
            round_ = await self.audit.seal_pending(
                limit=self.settings.seal_batch_size, expect=expect
            )
            if round_ is None:
                return None
            sealed += round_.sealed
            expect = round_.head
            if round_.sealed:
                self.head = round_.head
            if round_.sealed < self.settings.seal_batch_size:
                break
        SEALED.inc(sealed)
        HEAD.set(round_.head.position)
        # What a checkpoint may vouch for: the head this instance made (a round that
        # sealed nothing after a full batch reads the head back, which may by then be
        # another's), or the table's head when it is still one this instance made.
        head = self.head if sealed and self.head is not None else round_.head
        if not sealed and self._unannounced != head:
            # Sealed past it since (another instance, which announces its own), or gone.
            self._unannounced = None
        if sealed or self._unannounced is not None:
            # Redis at once; the broker and the log at most every checkpoint_seconds.
            now = asyncio.get_running_loop().time()
            due = now - self._broadcast_at >= self.settings.checkpoint_seconds
            if sealed or due:
                checkpoint = Checkpoint.issue(self.key, head, purged_through=round_.purged_through)
                await publish_checkpoint(
                    checkpoint, database=self.database, cache=self.cache, broker=due
                )
            self._unannounced = None if due else head
            if due:
                self._broadcast_at = now
        return SealRound(sealed=sealed, head=round_.head, purged_through=round_.purged_through)

    async def watch_unsealed(self) -> float:
        """The oldest unsealed record's age, as a metric, and as an error in the log once
        past the window (at most once a window): unsealed, a record is protected by the
        database's privileges alone, and anyone who can keep the sealer from its turn (a
        lock or lease held elsewhere) keeps it so. Every instance watches, whoever seals."""
        oldest = await self.audit.oldest_unsealed()
        age = 0.0 if oldest is None else max((datetime.now(UTC) - oldest).total_seconds(), 0.0)
        UNSEALED_AGE.set(age)
        window = self.settings.window_seconds
        now = asyncio.get_running_loop().time()
        last = self._stalled_logged_at
        if age > window and (last is None or now - last >= window):
            self._stalled_logged_at = now
            log.error("audit_sealing_stalled", oldest_unsealed_seconds=round(age, 1))
        return age

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except ChainTruncatedError as exc:
                # Not extended: every new record stays unsealed, and `verify` reports both.
                log.error("audit_chain_truncated", error=str(exc))
            except Exception as exc:
                log.warning("audit_sealer_failed", error=repr(exc))
            try:
                await self.watch_unsealed()
            except Exception as exc:
                log.warning("audit_unsealed_unknown", error=repr(exc))
            await asyncio.sleep(self.settings.seal_interval_seconds)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
