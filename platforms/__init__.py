"""The sales platforms: one module per platform (client, mapping, stand-in), the shops and their sync."""
