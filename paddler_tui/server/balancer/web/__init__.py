"""The balancer's web side: the FastAPI services, their sockets, auth, CORS and streaming."""
