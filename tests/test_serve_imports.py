"""`jarvis serve` imports only what a server needs: no desktop (Qt, qasync, pyqtgraph, ui), no model
downloads (huggingface_hub), no MCP or vendor SDKs, no JSON-schema validator, and no `gguf` package
(its __init__ pulls its writer, reader and yaml: the header reader keeps its own type tables).
Proved by construction: a fresh interpreter runs the serve path (the CLI's parser, the Runtime with
the OpenAI routes, as jarvis.http.serve starts it), records sys.modules once it listens (the first
scan held until then) and again after a real request, and prints both."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.process import ROOT

NEVER = ("PySide6", "qasync", "ui", "pyqtgraph", "huggingface_hub", "mcp", "openai", "anthropic", "jsonschema",
         "gguf", "yaml")

SCRIPT = textwrap.dedent("""
    import asyncio, json, sys, threading
    from jarvis.cli import build_parser
    from bench.support.settings import make_settings

    args = build_parser().parse_args(["serve", "--host", "127.0.0.1", "--port", "0"])  # the CLI's own imports

    async def main():
        import aiohttp
        from jarvis.http.openai_routes import openai_routes
        from jarvis.runtime import Runtime

        runtime = Runtime(make_settings(sys.argv[1], JARVIS_MODELS_WARMUP="default"), registrars=[openai_routes])
        gate = threading.Event()
        runtime.assistant.catalog.scan_hook = lambda: gate.wait(120)  # no header read before we look
        started = asyncio.ensure_future(runtime.start(http=True, host="127.0.0.1", port=0))
        while runtime.server is None:
            await asyncio.sleep(0.005)
        listening = sorted(sys.modules)
        gate.set()
        await started
        try:
            async with aiohttp.ClientSession(runtime.server.url) as session:
                async with session.post("/v1/chat/completions", json={
                        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "cache": False}) as r:
                    status = r.status
        finally:
            await runtime.close()
        return {"listening": listening, "after": sorted(sys.modules), "status": status}

    print(json.dumps(asyncio.run(main())))
""")


def top_level(modules: list[str]) -> set[str]:
    return {m.partition(".")[0] for m in modules}


def test_the_serve_path_never_imports_the_desktop_downloads_or_sdks(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "data")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200
    assert top_level(seen["after"]) & set(NEVER) == set()  # the model was read, checked, loaded and ran


OVERLAP_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys, threading
    import jarvis.runtime as runtime_module
    from jarvis.engine.engine import Engine
    from bench.support.settings import make_settings

    load_began = threading.Event()
    seen = {}
    real_load, real_import = Engine.load, runtime_module.import_registrars

    def load(self, *args):
        seen["aiohttp_when_load_began"] = "aiohttp" in sys.modules
        load_began.set()
        real_load(self, *args)

    def import_registrars(factories):  # the HTTP stack waits until the model's load has begun
        seen["load_began_before_timeout"] = load_began.wait(120)
        return real_import(factories)

    Engine.load = load
    runtime_module.import_registrars = import_registrars

    async def main():
        runtime = runtime_module.Runtime(make_settings(sys.argv[1], JARVIS_MODELS_WARMUP="default"),
                                         registrars=[runtime_module.API_ROUTES])
        try:
            await runtime.start(http=True, host="127.0.0.1", port=0)
            seen["listening"] = runtime.server is not None
        finally:
            await runtime.close()

    asyncio.run(main())
    print(json.dumps(seen))
""")


def test_serve_starts_loading_the_default_model_before_it_imports_the_http_stack(tmp_path):
    """`jarvis serve` names its routes, so the default model's load (native, off the GIL) overlaps
    the import of aiohttp and the routes instead of waiting for it. Proved by holding that import
    until the load has begun: were the load to need the HTTP stack first, it would never begin."""
    done = subprocess.run([sys.executable, "-c", OVERLAP_SCRIPT, str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"aiohttp_when_load_began": False, "load_began_before_timeout": True, "listening": True}


GC_SCRIPT = textwrap.dedent("""
    import gc, json, os, signal, sys, threading, time
    import jarvis.runtime as runtime_module
    from jarvis.http import serve as serve_module
    from bench.support.settings import make_settings

    seen = {"passes": 0}
    real_start, real_startup = runtime_module.Runtime.start, serve_module.StartUp.__init__

    def startup(self):  # counted from serve()'s start-up mode on, not this script's own imports and settings
        real_startup(self)
        gc.callbacks.append(lambda phase, info: phase == "start" and seen.update(passes=seen["passes"] + 1))

    async def start(self, **kw):
        seen["automatic_while_starting"] = gc.isenabled()
        seen["switch_interval_while_starting"] = sys.getswitchinterval()
        await real_start(self, **kw)
        seen["passes_while_starting"] = seen["passes"]

    def stop_once_serving():  # serve() ends its start-up mode (StartUp.end) right after start()
        while "passes_while_starting" not in seen:
            time.sleep(0.01)
        time.sleep(0.3)
        seen["frozen"], seen["automatic_when_serving"] = gc.get_freeze_count(), gc.isenabled()
        seen["switch_interval_when_serving"] = sys.getswitchinterval()
        os.kill(os.getpid(), signal.SIGTERM)  # serve's own stop: it closes and returns 0

    runtime_module.Runtime.start, serve_module.StartUp.__init__ = start, startup
    threading.Thread(target=stop_once_serving, daemon=True).start()
    settings = make_settings(sys.argv[1], JARVIS_MODELS_WARMUP="default")
    seen["rc"] = serve_module.serve(settings, host="127.0.0.1", port=0)
    seen["automatic_after"] = gc.isenabled()
    print(json.dumps(seen))
""")


def test_serve_starts_without_cyclic_collection_and_with_a_short_switch_interval(tmp_path):
    """Start-up's ~130k long-lived objects cost the collector ~35 ms of GIL-held passes before the
    first token, and its threads' turns with the GIL waited up to Python's 5 ms switch interval
    each: `jarvis serve` runs no pass and switches every 1 ms until it listens, then freezes what
    start-up made (later passes skip it), switches automatic collection back on and restores the
    interval (jarvis.http.serve.StartUp)."""
    done = subprocess.run([sys.executable, "-c", GC_SCRIPT, str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["rc"] == 0 and seen["automatic_while_starting"] is False and seen["passes_while_starting"] == 0
    assert seen["frozen"] > 50_000 and seen["automatic_when_serving"] is True and seen["automatic_after"] is True
    assert seen["switch_interval_while_starting"] <= 0.001
    assert seen["switch_interval_when_serving"] == sys.getswitchinterval() > 0.001  # Python's own, restored


EARLY_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, urllib.request
    import jarvis.runtime as runtime_module
    from jarvis.engine import opening
    from jarvis.http import serve as serve_module
    from bench.support.settings import make_settings

    opened_on, seen = [], {}

    class CountedModel(opening.LlamaModel):  # the real load, counted with the thread it ran on
        def __init__(self, *args, **kwargs):
            opened_on.append(threading.current_thread().name)
            super().__init__(*args, **kwargs)

    opening.LlamaModel = CountedModel
    real_start = runtime_module.Runtime.start

    async def start(self, **kw):
        await real_start(self, **kw)
        url = self.server.url

        def ask():
            body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "cache": False})
            request = urllib.request.Request(url + "/v1/chat/completions", data=body.encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=120) as reply:
                seen["status"], seen["answer"] = reply.status, json.loads(reply.read())["choices"][0]["message"]
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=ask, daemon=True).start()

    runtime_module.Runtime.start = start
    seen["rc"] = serve_module.serve(make_settings(sys.argv[1], JARVIS_MODELS_WARMUP="default"), host="127.0.0.1", port=0)
    seen["opened_on"] = opened_on
    print(json.dumps(seen))
""")


def test_serve_opens_the_bundled_default_ahead_and_its_warm_up_takes_that_open(tmp_path):
    """`jarvis serve` begins the bundled default's open before the runtime is imported (opening.py);
    the warm-up's load takes it, so the weights are loaded once, on the early thread, and answer."""
    done = subprocess.run([sys.executable, "-c", EARLY_SCRIPT, str(tmp_path / "data")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["rc"] == 0 and seen["status"] == 200 and seen["answer"]["content"]
    assert seen["opened_on"] == ["jarvis-early-open"]
