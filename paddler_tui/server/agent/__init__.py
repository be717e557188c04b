"""The agent: runs llama.cpp slots for a balancer (only ``engine/`` imports llama_cpp)."""
