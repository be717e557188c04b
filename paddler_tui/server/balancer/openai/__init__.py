"""OpenAI compatibility: OpenAI's request and response shapes, to and from Paddler's."""
