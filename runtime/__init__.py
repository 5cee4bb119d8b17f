"""The Temporal runtime: client, data converter, payload codec and key ring, dev server, worker assembly, logging."""
