"""Use cases: what the gateway does, written against ports (`use_cases.ports`), never against an
adapter."""
