"""`jarvis ask PROMPT`: one answer streamed to stdout, in-process or through a running instance."""

from __future__ import annotations

import asyncio
import sys

from jarvis.cli.common import EXIT_USAGE, add_remote_option, settings_for


def add_parser(sub) -> None:
    a = sub.add_parser("ask", help="answer one prompt, streamed to stdout")
    a.add_argument("prompt", nargs="*")
    a.add_argument("--model")
    a.add_argument("--system")
    a.add_argument("--max-tokens", type=int)
    a.add_argument("--temperature", type=float)
    a.add_argument("--seed", type=int)
    a.add_argument("--stats", action="store_true", help="print load time, TTFT and tokens/s to stderr")
    a.add_argument("--server", metavar="URL", help="send through a running JARVIS (its OpenAI API) instead")
    a.add_argument("--tools", action="store_true",
                   help="let the model call the tools of your MCP servers (each call asked y/n/a on the terminal)")
    a.add_argument("--tool-choice", default="auto", metavar="auto|required|TOOL",
                   help="with --tools: whether the model may (auto) or must call a tool, or which one")
    add_remote_option(a)
    a.set_defaults(func=run)


def run(args) -> int:
    prompt = " ".join(args.prompt).strip()
    if not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
    if not prompt:
        print("jarvis ask: the prompt is empty. Usage: jarvis ask \"YOUR QUESTION\"", file=sys.stderr)
        return EXIT_USAGE
    settings = settings_for(args)
    if args.server:
        if args.tools:
            print("jarvis ask: --tools runs the tools here; it does not go with --server.", file=sys.stderr)
            return EXIT_USAGE
        return _ask_server(settings, args, prompt)
    return asyncio.run(_ask(settings, args, prompt))


def _ask_server(settings, args, prompt: str) -> int:
    """Through a running instance's /v1/chat/completions, streamed (no model load here)."""
    from jarvis.http.client import stream_chat

    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": prompt}]
    body = {"model": args.model or "", "messages": messages, "max_tokens": args.max_tokens,
            "temperature": args.temperature, "seed": args.seed}
    final = None
    for text, event in stream_chat(settings, args.server, {k: v for k, v in body.items() if v is not None}):
        sys.stdout.write(text)
        sys.stdout.flush()
        final = event or final
    sys.stdout.write("\n")
    if args.stats and final and final.get("jarvis"):
        from jarvis.stats_line import stats_line
        from jarvis.telemetry.records import RequestRecord

        record = RequestRecord.from_figures(final["jarvis"])  # the server's record, as its API answer carries it
        print(f"{stats_line(record, detail=True)} · via {args.server}", file=sys.stderr)
    return 0


async def _ask(settings, args, prompt: str) -> int:
    from jarvis.assistant import Assistant
    from jarvis.stats_line import stats_line

    assistant = Assistant(settings)
    try:
        request = assistant.request(prompt, system=args.system, model=args.model or "", max_tokens=args.max_tokens,
                                    temperature=args.temperature, seed=args.seed, operation="ask",
                                    source="cli")
        record = None
        if args.tools:
            from jarvis.tools.terminal import tool_turn

            async for chunk in tool_turn(assistant, settings, request, args.tool_choice):
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                record = chunk.record or record
        else:
            async for chunk in assistant.stream(request):
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
                record = chunk.record or record
        sys.stdout.write("\n")
        if args.stats and record:
            print(stats_line(record, detail=True), file=sys.stderr)
        return 0
    finally:
        await assistant.close()
