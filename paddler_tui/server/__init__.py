"""Server side of paddler-tui: the balancer and the agent."""
