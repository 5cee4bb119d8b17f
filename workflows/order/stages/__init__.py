"""The stages of the order clerk's day (SPEC §3), one module each, in the order they run:
intake (check) → buyer → payment → inventory → review → fulfilment; cancel on any way out."""
