"""`jarvis mcp import / add / list` and `jarvis ask --tools`, as a user runs them (subprocesses),
against mcp-server-time from PyPI."""

from __future__ import annotations

import json
import sys
import tomllib

from tests.support.process import run_jarvis

TIME_ARGS = ["-m", "mcp_server_time", "--local-timezone", "UTC"]


def test_import_a_claude_desktop_mcp_json_then_list_its_tools_and_their_cost(tmp_path, env):
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("# my own comment stays\n[engine]\nbatch_size = 2\n")
    mcp_json = tmp_path / "claude_desktop_config.json"
    mcp_json.write_text(json.dumps({"mcpServers": {
        "time": {"command": sys.executable, "args": TIME_ARGS},
        "git tools": {"command": "uvx", "args": ["mcp-server-git"], "env": {"GIT_TOKEN": "${GIT_TOKEN}"},
                      "disabled": True}}}))
    done = run_jarvis(["--config", str(settings_file), "mcp", "import", str(mcp_json)], env)
    assert done.returncode == 0, done.stderr
    assert "Added MCP server time" in done.stdout and "Added MCP server git-tools" in done.stdout
    text = settings_file.read_text()
    assert text.startswith("# my own comment stays\n")
    servers = tomllib.loads(text)["mcp"]["servers"]
    assert servers["time"] == {"command": sys.executable, "args": TIME_ARGS}
    assert servers["git-tools"]["enabled"] is False and servers["git-tools"]["env"] == {"GIT_TOKEN": "${GIT_TOKEN}"}

    listed = run_jarvis(["--config", str(settings_file), "mcp", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows = {tuple(line.split()[:3]) for line in listed.stdout.splitlines()}
    assert ("time", "stdio", "ready") in rows and ("git-tools", "stdio", "disabled") in rows
    costs = {line.split()[1]: int(line.split()[4]) for line in listed.stdout.splitlines()
             if line.startswith("time ") and line.split()[1] in ("get_current_time", "convert_time")}
    assert set(costs) == {"get_current_time", "convert_time"} and all(c > 20 for c in costs.values())
    total = int(listed.stdout.split("The enabled tools take ")[1].split()[0])

    # Switch one tool off: it leaves the prompt, and the total drops by its cost.
    settings_file.write_text(text + "\n[mcp.servers.time.tools.convert_time]\nenabled = false\n")
    listed = run_jarvis(["--config", str(settings_file), "mcp", "list"], env)
    assert listed.returncode == 0, listed.stderr
    off = [line.split() for line in listed.stdout.splitlines() if line.startswith("time ") and "convert_time" in line]
    assert off[0][2:5] == ["off", "ask", "-"]
    assert int(listed.stdout.split("The enabled tools take ")[1].split()[0]) == total - costs["convert_time"]


def test_add_writes_the_settings_file_and_refuses_a_name_twice(tmp_path, env):
    settings_file = tmp_path / "settings.toml"
    done = run_jarvis(["--config", str(settings_file), "mcp", "add", "clock", "--env", "TZ=UTC", "--",
                       sys.executable, *TIME_ARGS], env)
    assert done.returncode == 0, done.stderr
    server = tomllib.loads(settings_file.read_text())["mcp"]["servers"]["clock"]
    assert server == {"command": sys.executable, "args": TIME_ARGS, "env": {"TZ": "UTC"}}
    before = settings_file.read_text()
    again = run_jarvis(["--config", str(settings_file), "mcp", "add", "clock", "--", "other"], env)
    assert again.returncode == 2 and "MCP server clock is already configured" in again.stderr
    assert settings_file.read_text() == before
    neither = run_jarvis(["--config", str(settings_file), "mcp", "add", "x"], env)
    assert neither.returncode == 2 and "give the server's command after --" in neither.stderr


def test_ask_with_tools_asks_on_the_terminal_and_the_answer_uses_the_result(tmp_path, env):
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(f"[mcp.servers.time]\ncommand = {json.dumps(sys.executable)}\n"
                             f"args = {json.dumps(TIME_ARGS)}\n[mcp]\nmax_rounds = 1\n")
    base = ["--config", str(settings_file), "ask", "--tools", "--tool-choice", "get_current_time",
            "--temperature", "0", "--max-tokens", "60", "What time is it in Tokyo?"]
    done = run_jarvis(base, env, input="y\n")
    assert done.returncode == 0, done.stderr
    assert "get_current_time" in done.stderr and "run it? [y]es / [n]o / [a]lways" in done.stderr
    assert "[tool] get_current_time: done in" in done.stderr
    denied = run_jarvis(base, env, input="n\n")
    assert denied.returncode == 0 and "[tool] get_current_time: denied" in denied.stderr


def test_chat_with_tools_asks_then_always_holds_for_the_rest_of_the_chat(tmp_path, env):
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(f"[mcp.servers.time]\ncommand = {json.dumps(sys.executable)}\n"
                             f"args = {json.dumps(TIME_ARGS)}\n[mcp]\nmax_rounds = 1\n")
    script = "What time is it in Tokyo?\na\nAnd in Madrid?\n/exit\n"
    done = run_jarvis(["--config", str(settings_file), "chat", "--tools", "--tool-choice", "get_current_time"],
                      {**env, "JARVIS_GENERATION_TEMPERATURE": "0", "JARVIS_GENERATION_MAX_TOKENS": "60"},
                      input=script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("run it? [y]es / [n]o / [a]lways") == 1  # asked once: "a" holds
    assert done.stdout.count("[tool] get_current_time: done in") == 2
