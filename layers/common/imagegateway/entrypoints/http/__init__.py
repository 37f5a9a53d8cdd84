"""The HTTP API: the resolver, its one error table and OpenAPI document, and the routes."""
