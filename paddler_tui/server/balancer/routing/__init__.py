"""Prefix-aware routing: which agent most likely holds a request's prompt in its caches."""
