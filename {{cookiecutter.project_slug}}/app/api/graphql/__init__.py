"""The GraphQL API, served at /graphql."""

from strawberry.fastapi import GraphQLRouter

from app.api.dependencies import ServicesDep
from app.api.graphql.schema import Context, schema


async def get_context(services: ServicesDep) -> Context:
    return Context(services)


def create_router(*, ide: bool) -> GraphQLRouter[Context, None]:
    return GraphQLRouter(
        schema, path="/graphql", context_getter=get_context, graphql_ide="graphiql" if ide else None
    )
