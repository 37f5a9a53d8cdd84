"""POST /sd/{kind}/v1: validate the upstream's own body, record the job, start its workflow
(whose first task sends it upstream, once).

The routes themselves are in `entrypoints.http.submit_routes` (shared with the OpenAPI document).
"""

from imagegateway.entrypoints.handlers import http_handler
from imagegateway.entrypoints.http.resolver import make_resolver
from imagegateway.entrypoints.http.submit_routes import submit_routes

app = make_resolver(submit_routes)
lambda_handler = http_handler(
    app,
    requires=(
        "state_machine_arn",
        "idempotency_table_name",
        "upstream_api_key_secret_name",
        "usage_table_name",
    ),
)
