"""``host:port`` addresses as Paddler's CLI takes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, value: str) -> HostPort:
        """Parse ``host:port`` (``[v6]:port`` for IPv6); raise ValueError with the reason."""
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"invalid port in {value!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range in {value!r}")
        return cls(host, port)
