"""The Anthropic Messages API (/v1/messages), a translator onto the one internal request."""
