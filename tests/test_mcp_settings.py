"""[mcp] and [mcp.servers.NAME]: validated like every setting, merged across files, secrets unshown."""

from __future__ import annotations

import pytest

from jarvis.config import load_settings
from jarvis.errors import ConfigError
from jarvis.mcp.settings import expand


def _write(tmp_path, text: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_stdio_and_an_http_server_with_per_tool_switches_and_policies(tmp_path):
    path = _write(tmp_path, """
[mcp]
max_rounds = 2
[mcp.servers.time]
command = "uvx"
args = ["mcp-server-time"]
approval = "always"
tools.convert_time.enabled = false
tools.get_current_time.approval = "never"
[mcp.servers.web]
url = "http://127.0.0.1:8000/mcp"
headers = { Authorization = "Bearer ${TOKEN}" }
""")
    mcp = load_settings(path, environ={"JARVIS_MCP_RESULT_MAX_KB": "8"}).mcp
    assert (mcp.max_rounds, mcp.result_max_kb) == (2, 8)
    time, web = mcp.servers["time"], mcp.servers["web"]
    assert (time.transport, web.transport) == ("stdio", "http")
    assert not time.tool_enabled("convert_time") and time.tool_enabled("get_current_time")
    assert (time.tool_approval("get_current_time"), time.tool_approval("convert_time")) == ("never", "always")
    assert web.tool_approval("anything") == "ask"  # the default for every tool


def test_a_later_file_changes_one_key_of_a_server(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    own = tmp_path / "xdg" / "jarvis" / "settings.toml"
    own.parent.mkdir(parents=True)
    own.write_text('[mcp.servers.time]\ncommand = "uvx"\nargs = ["mcp-server-time"]\n')
    path = _write(tmp_path, "[mcp.servers.time]\ntimeout_s = 5\n")
    server = load_settings(path, environ={}).mcp.servers["time"]
    assert (server.command, server.args, server.timeout_s) == ("uvx", ["mcp-server-time"], 5)


@pytest.mark.parametrize("table, message", [
    ('command = "a"\nurl = "http://x:1/mcp"', "either command .* or url"),
    ('args = ["x"]', "either command"),
    ('command = "a"\ncolour = 1', "unknown key mcp.servers.bad.colour"),
    ('command = "a"\napproval = "maybe"', r"mcp.servers.bad.approval = 'maybe' is invalid"),
    ('url = "ftp://x"', "is not an http"),
])
def test_a_bad_server_table_is_one_clear_error_naming_file_and_key(tmp_path, table, message):
    path = _write(tmp_path, f"[mcp.servers.bad]\n{table}\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_settings(path, environ={})
    assert str(path) in str(e.value)


def test_an_env_value_is_never_shown_in_an_error(tmp_path):
    path = _write(tmp_path, '[mcp.servers.s]\ncommand = "a"\nenv = { KEY = 12345 }\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path, environ={})
    assert "12345" not in str(e.value) and "mcp.servers.s.env.KEY" in str(e.value)


def test_env_references_expand_and_a_missing_one_names_the_variable_only():
    assert expand({"A": "Bearer ${TOK}", "B": "plain"}, "h", {"TOK": "s3cret"}) == {"A": "Bearer s3cret", "B": "plain"}
    with pytest.raises(ConfigError, match=r"h.A uses \$\{NOPE\}, which is not set: export NOPE") as e:
        expand({"A": "Bearer ${NOPE} s3cret"}, "h", {})
    assert "s3cret" not in str(e.value)


SERVER = '''# my tools
[mcp.servers.time]
command = "uvx"  # the server
args = ["mcp-server-time"]
'''


def _approval(path, tool="get_current_time"):
    return load_settings(path).mcp.servers["time"].tool_approval(tool)


def test_always_allow_appends_its_table_and_keeps_the_rest_of_the_file(tmp_path):
    from jarvis.mcp.imports import set_tool_approval

    path = tmp_path / "settings.toml"
    path.write_text(SERVER)
    set_tool_approval(path, "time", "get_current_time", "always", lambda: load_settings(path))
    text = path.read_text()
    assert text.startswith(SERVER) and text.count("[mcp.servers.time.tools.get_current_time]") == 1
    assert _approval(path) == "always" and _approval(path, "convert_time") == "ask"
    set_tool_approval(path, "time", "get_current_time", "always", lambda: load_settings(path))  # again: one table
    assert path.read_text() == text


def test_always_allow_edits_a_tool_table_that_is_there_already(tmp_path):
    from jarvis.mcp.imports import set_tool_approval

    path = tmp_path / "settings.toml"
    path.write_text(SERVER + '\n[mcp.servers.time.tools."get_current_time"]  # mine\napproval = "ask"\n'
                    'enabled = true  # keep it\n\n[generation]\ntemperature = 0.5\n')
    set_tool_approval(path, "time", "get_current_time", "always", lambda: load_settings(path))
    text = path.read_text()
    assert 'approval = "always"\nenabled = true  # keep it' in text and 'approval = "ask"' not in text
    assert _approval(path) == "always" and load_settings(path).generation.temperature == 0.5


def test_always_allow_that_cannot_be_written_leaves_the_file_as_it_was(tmp_path):
    from jarvis.mcp.imports import set_tool_approval

    path = tmp_path / "settings.toml"
    inline = SERVER + 'tools = { get_current_time = { enabled = true } }\n'  # a [..tools.X] table would redefine it
    path.write_text(inline)
    with pytest.raises(ConfigError):
        set_tool_approval(path, "time", "get_current_time", "always", lambda: load_settings(path))
    assert path.read_text() == inline and not list(tmp_path.glob(".*.tmp"))
