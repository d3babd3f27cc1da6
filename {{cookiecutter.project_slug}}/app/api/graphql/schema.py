"""The GraphQL schema: transport only, every resolver calls a feature's service."""

import re
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import Enum
from typing import Any, Self, TypeVar
from uuid import UUID

import strawberry
import structlog
from fastapi import Request
from graphql import (
    GraphQLError,
    Lexer,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    Source,
    TokenKind,
)
from pydantic import BaseModel, ValidationError
from strawberry import relay
from strawberry.dataloader import DataLoader
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.fastapi import BaseContext
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, ExecutionResult, Info
from strawberry.types.graphql import OperationType

from app.api.dependencies import ServicesDep, authenticate, client_ip, limit_password_work
from app.api.graphql import relay as ids
from app.api.graphql.errors import (
    RecordRefusals,
    RefusalsSeen,
    SchemaNames,
    is_unexpected,
    shaped,
    wait_headers,
)
from app.api.graphql.idempotency import IdempotencyKey, mark_replay
from app.api.graphql.limits import (
    MAX_TOKENS,
    QUERY_CACHE_SIZE,
    BoundedValidation,
    document_refusal,
)
from app.api.graphql.metrics import OperationMetrics
from app.api.graphql.relay import (
    NodeBudget,
    Refetchable,
    as_uuid,
    connection,
    cursor_key,
    global_id,
    uuid_key,
    uuid_of,
    window,
)
from app.api.graphql.tracing import OperationSpans
from app.auth import service as auth
from app.auth.tokens import Principal
from app.core.errors import AppError, InvalidInputError, UnauthorizedError
from app.core.idempotency import scope
from app.core.pagination import PAGE_MAX, cursor_for
from app.core.problems import MAX_LISTED_ERRORS
from app.items import service as item_service
from app.items.schemas import ItemCreate, ItemPublic, ItemQuery, ItemUpdate
from app.observability.sentry import report_error
from app.observability.tracing import tracer_provider
from app.services import Services
from app.users import service as user_service
from app.users.errors import admins_only
from app.users.schemas import PasswordChange, UserCreate, UserPublic

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
# Bounds on one document, so no query costs more than a few list pages: with lists of at
# most PAGE_MAX nodes, these bound the fields a query can make the server resolve.
MAX_DEPTH = 8
MAX_ALIASES = 15
# And on what one request may fetch, whatever the document and its variables: nodes in
# all, drawn by every field that fetches some (`nodes(ids)` its ids, a list its page
# size, `node` one), so aliases cannot multiply the work one rate-limited request does.
MAX_NODES = 2 * PAGE_MAX
# The depth and alias rules, made once: the validation cache is keyed by the rules too,
# so rules made anew for each request (as a limiter extension per request does) would
# have every document validated again.
LIMITS = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


def validated(model: type[M], **data: Any) -> M:
    """Input checked by the same pydantic model the service expects. Refused, each field
    is named with why, as REST's errors give them (the rule, never the value sent)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False)
        reasons = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'input'}: {error['msg']}"
            for error in found[:MAX_LISTED_ERRORS]
        )
        raise InvalidInputError(f"Invalid input: {reasons}.") from exc


class Context(BaseContext):
    def __init__(self, services: Services, request: Request) -> None:
        super().__init__()
        self.services = services
        self.http_request = request
        self._principal: Principal | None = None
        self._admin_confirmed = False
        self._session_ended = False
        self.budget = NodeBudget(MAX_NODES)
        # The refusals of the fields that failed, by event (errors.RefusalsSeen).
        self.refusals: dict[object, AppError] = {}
        # One batched query per request for all the owners a response needs.
        self.users = DataLoader(load_fn=self._load_users)
        # The items `node` and `nodes` fetch: an item asked for twice is read once.
        self.items = DataLoader(load_fn=self._load_items)

    async def principal(self) -> Principal:
        if self._session_ended:
            # A mutation before this one ended the session (logout, a password or own
            # role changed, erasure): the mutations after it in the document are refused,
            # as the session's next request would be.
            raise UnauthorizedError("The session has ended; sign in again.")
        if self._principal is None:
            self._principal = await authenticate(self.http_request, self.services)
        return self._principal

    def end_session(self) -> None:
        self._session_ended = True

    async def admin(self) -> Principal:
        principal = await self.principal()
        if not principal.is_admin:
            raise admins_only(principal.user_id)
        if not self._admin_confirmed:  # once a request, however many fields ask
            await user_service.confirm_admin(
                database=self.services.database, user_id=principal.user_id
            )
            self._admin_confirmed = True
        return principal

    async def _load_users(self, ids: list[UUID]) -> list["User | None"]:
        """One read for all the accounts the response needs (an administrator's reads of
        other users' are recorded, once a read)."""
        users = await user_service.users_by_ids(
            database=self.services.database, user_ids=ids, principal=await self.principal()
        )
        found = {user.id: User.from_public(user) for user in users}
        return [found.get(user_id) for user_id in ids]

    async def _load_items(self, ids: list[UUID]) -> list[ItemPublic | BaseException]:
        """Each as `item(id:)` reads it, with its refusal in its place: one cache round
        trip and one database read for them all."""
        services = self.services
        found = await item_service.get_items(
            database=services.database,
            cache=services.cache,
            item_ids=ids,
            ttl=services.settings.cache.item_seconds,
            principal=await self.principal(),
        )
        return list(found)


async def get_context(request: Request, services: ServicesDep) -> Context:
    return Context(services, request)


GraphQLInfo = Info[Context, None]


@strawberry.enum
class ItemStatus(Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


@strawberry.enum
class ItemSort(Enum):
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    NAME = "name"
    NAME_DESC = "-name"
    PRICE = "price_cents"
    PRICE_DESC = "-price_cents"


@strawberry.enum
class UserRole(Enum):
    USER = "user"
    ADMIN = "admin"


@strawberry.type
class User(relay.Node, Refetchable):
    id: relay.NodeID[UUID]
    email: str
    # The enum setRole takes, not its text: a client reads and writes one type.
    role: UserRole
    created_at: datetime

    @classmethod
    def from_public(cls, user: UserPublic) -> "User":
        role = UserRole(user.role)
        return cls(id=user.id, email=user.email, role=role, created_at=user.created_at)

    @classmethod
    async def refetch(cls, info: GraphQLInfo, key: str) -> Self | None:
        """The caller's own account, or any for an administrator (as `me` and `users`)."""
        user_id = uuid_key(key)
        if user_id != (await info.context.principal()).user_id:
            await info.context.admin()
        user = await info.context.users.load(user_id)
        return user if isinstance(user, cls) else None


@strawberry.type
class Item(relay.Node, Refetchable):
    id: relay.NodeID[UUID]
    name: str
    description: str
    price_cents: int
    status: ItemStatus
    created_at: datetime
    updated_at: datetime
    owner_key: strawberry.Private[UUID]
    # Set with the item, not resolved: a list resolves no function per item for it.
    owner_id: relay.GlobalID = strawberry.field(
        description="The owner's id, as `owner { id }` gives it."
    )

    @strawberry.field
    async def owner(self, info: GraphQLInfo) -> User | None:
        return await info.context.users.load(self.owner_key)

    @classmethod
    def from_public(cls, item: ItemPublic) -> Self:
        return cls(
            id=item.id,
            name=item.name,
            description=item.description,
            price_cents=item.price_cents,
            status=ItemStatus(item.status),
            created_at=item.created_at,
            updated_at=item.updated_at,
            owner_key=item.owner_id,
            owner_id=global_id("User", item.owner_id),
        )

    @classmethod
    async def refetch(cls, info: GraphQLInfo, key: str) -> Self | None:
        """As `item(id:)`: the owner's or an admin's."""
        return cls.from_public(await info.context.items.load(uuid_key(key)))


@strawberry.type
class RegistrationAccepted:
    """The same whether or not the address already had an account."""

    detail: str


@strawberry.type
class TokenPair:
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


@strawberry.input
class ItemFilter:
    status: ItemStatus | None = None
    owner_id: strawberry.ID | None = None


@strawberry.input
class ItemInput:
    name: str
    description: str = ""
    price_cents: int = 0
    status: ItemStatus = ItemStatus.DRAFT


@strawberry.input
class ItemPatch:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    price_cents: int | None = strawberry.UNSET
    status: ItemStatus | None = strawberry.UNSET


def _set(**fields: Any) -> dict[str, Any]:
    """The fields a client actually sent, with enums as their values."""
    return {
        key: value.value if isinstance(value, Enum) else value
        for key, value in fields.items()
        if value is not strawberry.UNSET
    }


@strawberry.type
class Query:
    """Every field's result is nullable, as the mutations' are: one that fails is null
    with its error, and the others keep theirs. Were they non-null, one failure would
    null the whole response and cancel the fields still running beside it: their answers
    lost, and their refusals, had they been refused, never recorded."""

    @strawberry.field
    async def me(self, info: GraphQLInfo) -> User | None:
        principal = await info.context.principal()
        user = await user_service.get_user(
            database=info.context.services.database, user_id=principal.user_id
        )
        return User.from_public(user)

    @strawberry.field
    async def users(
        self,
        info: GraphQLInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> relay.Connection[User] | None:
        """Administrators only: users in id order."""
        await info.context.admin()
        page = window(info, first=first, after=after, last=last, before=before)
        users = await user_service.window_users(
            database=info.context.services.database,
            window=page,
            after=cursor_key(after, as_uuid),
            before=cursor_key(before, as_uuid),
        )
        return connection(users, User.from_public, lambda user: str(user.id))

    @strawberry.field
    async def item(self, info: GraphQLInfo, id: strawberry.ID) -> Item | None:
        """The owner's or an admin's: forbidden for anyone else."""
        services = info.context.services
        item = await item_service.get_item(
            database=services.database,
            cache=services.cache,
            item_id=uuid_of(id, "Item"),
            ttl=services.settings.cache.item_seconds,
            principal=await info.context.principal(),
        )
        return Item.from_public(item)

    @strawberry.field
    async def items(
        self,
        info: GraphQLInfo,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ItemFilter | None = None,
        sort: ItemSort = ItemSort.CREATED_AT_DESC,
    ) -> relay.Connection[Item] | None:
        """The caller's items (an admin's: everyone's, `ownerId` to pick one owner), up to
        PAGE_MAX a page: `first` after pageInfo.endCursor for the next page, `last` before
        pageInfo.startCursor for the previous one."""
        principal = await info.context.principal()
        page = window(info, first=first, after=after, last=last, before=before)
        chosen = _set(status=filter.status, owner_id=filter.owner_id) if filter else {}
        if chosen.get("owner_id") is not None:
            chosen["owner_id"] = uuid_of(chosen["owner_id"], "User")
        query = validated(ItemQuery, sort=sort.value, **chosen)
        items = await item_service.window_items(
            database=info.context.services.database,
            query=query,
            window=page,
            principal=principal,
        )
        return connection(
            items,
            Item.from_public,
            lambda item: cursor_for(item, sort=query.sort, field=query.sort_field),
        )


@strawberry.type
class Mutation:
    """Every mutation's result is nullable, as GraphQL advises: in a document of several,
    one that fails is null with its error, and the others keep their results (and run).
    Were they non-null, one failure would null the whole response, hiding the writes the
    ones before it committed, and stop the ones after it."""

    @strawberry.mutation
    async def register(
        self, info: GraphQLInfo, email: str, password: str
    ) -> RegistrationAccepted | None:
        """The same answer whether or not the email already has an account: nobody learns
        from it which addresses are registered. Log in to use the account."""
        services = info.context.services
        await limit_password_work(info.context.http_request, services, "register")
        data = validated(UserCreate, email=email, password=password)
        await user_service.request_registration(
            database=services.database, passwords=services.passwords, data=data
        )
        return RegistrationAccepted(detail=user_service.REGISTRATION_ACCEPTED)

    @strawberry.mutation
    async def login(self, info: GraphQLInfo, email: str, password: str) -> TokenPair | None:
        services = info.context.services
        pair = await auth.login(
            database=services.database,
            passwords=services.passwords,
            tokens=services.tokens,
            limiter=services.limiter,
            limits=services.settings.rate_limit,
            email=email,
            password=password,
            client_ip=client_ip(info.context.http_request),
        )
        return TokenPair(**pair.model_dump())

    @strawberry.mutation
    async def refresh_token(self, info: GraphQLInfo, refresh_token: str) -> TokenPair | None:
        services = info.context.services
        pair = await auth.refresh(
            database=services.database, tokens=services.tokens, refresh_token=refresh_token
        )
        return TokenPair(**pair.model_dump())

    @strawberry.mutation
    async def logout(self, info: GraphQLInfo) -> bool | None:
        principal = await info.context.principal()
        services = info.context.services
        await auth.logout(database=services.database, tokens=services.tokens, principal=principal)
        info.context.end_session()
        return True

    @strawberry.mutation
    async def change_password(
        self, info: GraphQLInfo, current_password: str, new_password: str
    ) -> bool | None:
        """Every session ends with the change: log in again with the new password."""
        principal = await info.context.principal()
        services = info.context.services
        await limit_password_work(info.context.http_request, services, "password")
        await user_service.change_password(
            database=services.database,
            passwords=services.passwords,
            tokens=services.tokens,
            user_id=principal.user_id,
            data=validated(
                PasswordChange, current_password=current_password, new_password=new_password
            ),
        )
        info.context.end_session()
        return True

    @strawberry.mutation
    async def set_role(
        self, info: GraphQLInfo, user_id: strawberry.ID, role: UserRole
    ) -> User | None:
        """Administrators only. The user's sessions end with a change: the role is in every
        access token, so it holds from their next sign-in. Setting the role the user
        already has changes nothing."""
        admin = await info.context.admin()
        services = info.context.services
        user = await user_service.set_role(
            database=services.database,
            tokens=services.tokens,
            user_id=uuid_of(user_id, "User"),
            role=role.value,
            by=admin.user_id,
        )
        if user.id == admin.user_id and user.role != admin.role:
            info.context.end_session()  # their own role changed: their sessions ended
        return User.from_public(user)

    @strawberry.mutation
    async def create_item(
        self, info: GraphQLInfo, input: ItemInput, idempotency_key: IdempotencyKey = None
    ) -> Item | None:
        principal = await info.context.principal()
        data = validated(ItemCreate, **_set(**vars(input)))
        services = info.context.services
        outcome = await services.idempotency.run(
            key=idempotency_key,
            caller=scope(principal.user_id, address=client_ip(info.context.http_request)),
            operation="create_item",
            request=data,
            model=ItemPublic,
            status=200,
            create=lambda: item_service.create_item(
                database=services.database, owner=principal, data=data
            ),
        )
        mark_replay(info.context.response, outcome.replayed)
        return Item.from_public(outcome.value)

    @strawberry.mutation
    async def update_item(
        self, info: GraphQLInfo, id: strawberry.ID, input: ItemPatch
    ) -> Item | None:
        services = info.context.services
        data = validated(ItemUpdate, **_set(**vars(input)))
        item = await item_service.editable_item(
            database=services.database,
            item_id=uuid_of(id, "Item"),
            principal=await info.context.principal(),
        )
        updated = await item_service.update_item(
            database=services.database, cache=services.cache, item=item, data=data
        )
        return Item.from_public(updated)

    @strawberry.mutation
    async def delete_item(self, info: GraphQLInfo, id: strawberry.ID) -> bool | None:
        services = info.context.services
        item = await item_service.editable_item(
            database=services.database,
            item_id=uuid_of(id, "Item"),
            principal=await info.context.principal(),
        )
        await item_service.delete_item(database=services.database, cache=services.cache, item=item)
        return True


def overlong_int(query: str) -> str | None:
    """An Int literal with more digits than the interpreter converts (4300, against
    quadratic work): GraphQL's validation reads it with int(), which then fails as an
    unexpected error, not as the Int out of range it is."""
    limit = sys.get_int_max_str_digits()
    # From the first digit of a run only: tried from each one, each run of as many digits
    # as the limit was read over again from each of them (a 1 MB document: 15 s).
    if not limit or not re.search(r"(?<!\d)\d{" + str(limit + 1) + "}", query):
        return None  # the usual document: one scan, and no second lexing
    lexer = Lexer(Source(query))
    try:
        while (token := lexer.advance()).kind != TokenKind.EOF:
            if token.kind == TokenKind.INT and len(token.value or "") > limit:
                return token.value
    except GraphQLError:
        return None  # a syntax error, which the parser reports
    return None


class Schema(strawberry.Schema):
    # Set by build_schema: without introspection, error messages keep the schema hidden.
    introspection = True
    names: SchemaNames

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected errors are answers, not incidents: log only the unexpected ones.
        for error in errors:
            if is_unexpected(error) and error.original_error is not None:
                log.error("graphql_unexpected_error", exc_info=error.original_error)
                report_error(error.original_error)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        """Every error in the one shape (app/api/graphql/errors.py), given here, last, so
        none escapes it: not one raised while parsing, nor by an extension."""
        refusal = document_refusal(query) if query else None
        literal = overlong_int(query) if query and refusal is None else None
        if literal is not None:
            refusal = f"Int cannot represent non 32-bit signed integer value: {literal[:20]}…"
        if refusal is not None:
            result = ExecutionResult(data=None, errors=[GraphQLError(refusal)])
        else:
            try:
                result = await super().execute(
                    query,
                    variable_values,
                    context_value,
                    root_value,
                    operation_name,
                    allowed_operation_types,
                    operation_extensions,
                )
            except CannotGetOperationTypeError as exc:
                # A name no operation of the document has: an error of the request in the
                # GraphQL shape, as a document of several operations and no name is
                # (Strawberry answered it with a 400 of its own).
                result = ExecutionResult(
                    data=None, errors=[GraphQLError(exc.as_http_error_reason())]
                )
        if result.errors:
            waits = wait_headers(result.errors)
            response = getattr(context_value, "response", None)
            if waits and response is not None:
                response.headers.update(waits)
            hide = None if self.introspection else self.names.hider(query, variable_values)
            result.errors = [shaped(error, hide) for error in result.errors]
        return result


class OneOperationOrItsName(SchemaExtension):
    """A document of several operations runs the one the request names, and is refused
    without a name (GraphQL's GetOperation); Strawberry would run the first."""

    requested: str | None = None

    def on_operation(self) -> Iterator[None]:
        # Before the document is parsed, this is the name the request gave, if any.
        self.requested = self.execution_context.operation_name
        yield

    def on_validate(self) -> Iterator[None]:
        # After the validation cache, which sets the document's errors, and before the
        # errors are looked at.
        context = self.execution_context
        document = context.graphql_document
        definitions = document.definitions if document else ()
        operations = sum(isinstance(node, OperationDefinitionNode) for node in definitions)
        if self.requested is None and operations > 1:
            refusal = GraphQLError(
                "Must provide operation name if query contains multiple operations."
            )
            context.pre_execution_errors = [*(context.pre_execution_errors or []), refusal]
        yield


# Introspection refused (`__typename` is still allowed): production keeps its schema to itself.
NO_INTROSPECTION = [*LIMITS, NoSchemaIntrospectionCustomRule]


def build_schema(*extra: tuple[type, type], introspection: bool = True) -> Schema:
    """The schema, with the (query, mutation) types of the options chosen at generation."""
    rules = LIMITS if introspection else NO_INTROSPECTION
    schema = Schema(
        query=merge_types("Query", (Query, ids.Query, *(query for query, _ in extra))),
        mutation=merge_types("Mutation", (Mutation, *(mutation for _, mutation in extra))),
        execution_context_class=RefusalsSeen,
        # Parsing and validating a query costs far more than running it, and clients send
        # the same few query documents over and over: both are cached by document.
        extensions=[
            *([OperationSpans] if tracer_provider() else []),
            RecordRefusals,
            OperationMetrics,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=QUERY_CACHE_SIZE),
            BoundedValidation,
            OneOperationOrItsName,
        ],
    )
    schema.introspection = introspection
    schema.names = SchemaNames(schema._schema)
    return schema
