"""A conversation: its state as a pure fold of events (`state`), kept in Redis (`store`)."""
