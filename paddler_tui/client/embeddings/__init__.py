"""Embedding runs: from the user's documents to a batch request, its events and its results."""
