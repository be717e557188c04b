"""Async client of the balancer's public API (HTTP and WebSocket), for the UI, tests and benches."""
