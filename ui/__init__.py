"""The JARVIS desktop: a chat window and a live System Monitor on one qasync loop."""
