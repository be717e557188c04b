"""What generated text becomes: token classification, model markers, tool calls, responses."""
