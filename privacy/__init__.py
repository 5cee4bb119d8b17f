"""Buyer data: one PII masker, and the purge of ended orders' PII."""
