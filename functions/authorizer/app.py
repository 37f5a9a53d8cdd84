"""The HTTP API's Lambda authorizer (payload 2.0, simple responses): an `API-Key` header that
names a live key authorizes the request as the key's owner (`context.owner`, which the routes
read as the caller's identity). With AUTH_MODE=IAM every key is refused."""

from imagegateway.entrypoints.authorizer import authorize
from imagegateway.entrypoints.handlers import authorizer_entry

lambda_handler = authorizer_entry(authorize, requires=("api_keys_table_name",))
