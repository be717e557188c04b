"""The balancer: inference, management and OpenAI-compatible services."""
