"""The balancer's client: its public API (HTTP and WebSocket), for the UI, tests and benches,
and what the TUI builds on it without Textual (chat, embeddings, monitoring, cluster state)."""
