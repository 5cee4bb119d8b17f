"""starter.py's subcommands (starter.py stays the entry point)."""
