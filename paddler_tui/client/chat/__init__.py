"""The chat's client side: conversations kept in SQLite, and answers read from the balancer."""
