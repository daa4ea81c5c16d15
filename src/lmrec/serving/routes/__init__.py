"""One router per concern: recommendations, events, items, operations."""
