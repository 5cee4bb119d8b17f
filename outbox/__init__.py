"""The outbox domain: outbound events stored once, delivered by signed webhooks."""
