"""POST /sd/text2image/v1: validate the upstream's own body, send it once, start the workflow.

The route itself is `imagegateway.api.submit` (shared with the OpenAPI document).
"""

from imagegateway.api import make_resolver, submit_routes
from imagegateway.handlers import http_handler

app = make_resolver(submit_routes)
lambda_handler = http_handler(app)
