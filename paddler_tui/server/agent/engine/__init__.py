"""The llama.cpp engine: the agent's only llama_cpp importer (not ``types``, ``thread`` and
``extra_buffers``, which the asyncio side imports)."""
