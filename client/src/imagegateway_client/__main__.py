"""`python -m imagegateway_client`: the `imagegateway` CLI."""

import sys

from imagegateway_client.cli import main

sys.exit(main())
