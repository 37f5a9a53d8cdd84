"""Entry points: the Lambda handlers' shapes, the wiring that builds the adapters once per cold
start, the HTTP routes and their one error table, the queue consumers, the authorizer; and one
operator's tool, `key_admin` (the `imagegateway-keys` command), which no function imports."""
