"""The agent: runs llama.cpp slots for a balancer (only ``engine*`` modules import llama_cpp)."""
