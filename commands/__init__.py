"""The one command layer (submit, act, restock, keys, purge, shops, labels, ...) used by the CLI, the HTTP API, the console and the demo."""
