"""The platform every wing stands on: settings, logging, tracing and metrics, the invocation's
time budget."""
