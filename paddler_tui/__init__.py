"""Paddler, the llama.cpp load balancer, re-made in Python with a Textual UI."""
