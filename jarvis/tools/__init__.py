"""Tool calling as a domain service, below every API surface and front end.

- plan: a request's tools and tool choice (`ToolPlan`), how a model that only writes text is told
  about them and answers them (the Hermes `<tool_call>` convention), the grammar that forces
  well-formed calls, and the parser that turns the text back into `ToolCall`s
- source: where tools come from (`ToolSource`: MCP servers are one, jarvis.mcp.McpHub)
- loop: the tool loop every front end shares (validate, approve, call, feed back, up to N rounds)
"""

from jarvis.tools.plan import ContentFilter, FunctionSpec, NamedToolChoice, ToolChoice, ToolPlan, ToolSpec

__all__ = ["ContentFilter", "FunctionSpec", "NamedToolChoice", "ToolChoice", "ToolPlan", "ToolSpec"]
