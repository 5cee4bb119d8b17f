"""The intake domain: the order's check rules, CN addresses and their division data, the buyer's messages, address parsing."""
