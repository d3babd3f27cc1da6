"""The GraphQL API, served at /graphql."""

from fastapi import Depends
from strawberry.fastapi import GraphQLRouter

from app.api.dependencies import rate_limit_api
from app.api.graphql.schema import Context, build_schema, get_context


def create_router(*extra: tuple[type, type], ide: bool) -> GraphQLRouter[Context, None]:
    """The endpoint; `extra` adds the (query, mutation) types of the options chosen."""
    return GraphQLRouter(
        build_schema(*extra),
        path="/graphql",
        context_getter=get_context,
        graphql_ide="graphiql" if ide else None,
        # Queries over GET could be triggered cross-site; POST only.
        allow_queries_via_get=False,
        dependencies=[Depends(rate_limit_api)],
    )
