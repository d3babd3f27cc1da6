"""The GraphQL API, served at /graphql."""

from fastapi import Depends
from strawberry.fastapi import GraphQLRouter

from app.api.dependencies import rate_limit_api
from app.api.graphql.schema import Context, get_context, schema


def create_router(*, ide: bool) -> GraphQLRouter[Context, None]:
    return GraphQLRouter(
        schema,
        path="/graphql",
        context_getter=get_context,
        graphql_ide="graphiql" if ide else None,
        # Queries over GET could be triggered cross-site; POST only.
        allow_queries_via_get=False,
        dependencies=[Depends(rate_limit_api)],
    )
