"""MCP (Model Context Protocol) servers as a tool source for the assistant.

- settings: the [mcp] section and its [mcp.servers.NAME] tables (imported by jarvis.config)
- server: one server's connection on the asyncio loop (official `mcp` SDK), its state and tools
- hub: every configured server as one ToolSource for the tool loop (jarvis.tools.loop)
- imports: servers from another client's mcp.json, and writing them to the user's settings file

The SDK is imported only where a server is started, so reading settings never loads it.
"""
