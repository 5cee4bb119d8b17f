"""The read side of the CLI, the API and the console: orders, queues, events, stock."""
