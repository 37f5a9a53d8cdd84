"""The workflow's steps (send, check, store, fail), one module each, independent of one
another."""
