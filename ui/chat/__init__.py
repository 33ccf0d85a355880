"""The Chat tab: sidebar of conversations, the conversation, the composer, per-conversation settings."""
