"""`jarvis pull`, `jarvis rm` and `jarvis models --available`: the command-line side of downloads."""

from __future__ import annotations

import sys


def add_parsers(sub) -> None:
    p = sub.add_parser("pull", help="download a GGUF model from Hugging Face (resumable, verified)")
    p.add_argument("repo", metavar="REPO", help="OWNER/NAME on the hub (HF_ENDPOINT names a mirror)")
    p.add_argument("file", metavar="FILE", nargs="?", help="the .gguf file; omitted: the only one, or --quant")
    p.add_argument("--quant", metavar="Q", help="pick the file whose name carries this quantisation as a whole "
                                                "token, e.g. Q4_K_M (not Q4_K_M_L); several: asks which")
    p.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    p.add_argument("--retries", type=int, default=3, help="resume this many times after a dropped connection")
    p.set_defaults(func=cmd_pull)
    r = sub.add_parser("rm", help="delete a model from your models folder")
    r.add_argument("name", metavar="NAME", help="as `jarvis models` lists it")
    r.add_argument("-y", "--yes", action="store_true", help="do not ask")
    r.set_defaults(func=cmd_rm)


def cmd_pull(args) -> int:
    from jarvis.config import load_settings
    from jarvis.downloads.background import BackgroundPull
    from jarvis.downloads.errors import DownloadStopped
    from jarvis.downloads.pull import Pull

    pull = Pull(load_settings(args.config), args.repo, args.file, quant=args.quant, revision=args.revision)
    plan = _prepare(pull)
    for name, why in pull.refused_names.items():
        print(f"jarvis pull: ignored the hub file name {name!r}: {why}.", file=sys.stderr)
    if plan.already_installed:
        print(f"{plan.name} is already in your models folder ({plan.target}).")
        return 0
    print(f"{args.repo}/{plan.path}: {plan.size / 1e6:.1f} MB -> {plan.target}", file=sys.stderr)
    job = BackgroundPull(pull, retries=max(0, args.retries))
    job.start()
    try:
        _show_progress(job)
    except KeyboardInterrupt:
        job.pause()
        job.join()
        print(f"\nPaused at {pull.progress.done / 1e6:.1f} MB; run the same pull again to resume.", file=sys.stderr)
        return 130
    if job.error is not None:
        if isinstance(job.error, DownloadStopped):
            return 130
        raise job.error
    plan = pull.plan  # planned again if the file changed on the hub while it downloaded
    print(f"Verified (SHA-256 {plan.sha256[:12]}…, GGUF header) and installed: {job.result}")
    print(f"Chat with it: jarvis chat --model {plan.name.removesuffix('.gguf')}")
    return 0


def _prepare(pull):
    """Plan the pull; when several files fit FILE or --quant, list them and ask on a terminal (elsewhere
    the error lists them and says to name one)."""
    from jarvis.downloads.hub import Ambiguous

    try:
        return pull.prepare()
    except Ambiguous as e:
        if not sys.stdin.isatty():
            raise
        choices = sorted(e.choices, key=lambda f: f.path)
        print(f"Several files of {pull.repo} fit:")
        for i, f in enumerate(choices, 1):
            print(f"  {i}) {f.path}" + (f"  ({f.size / 1e6:.1f} MB)" if f.size else ""))
        answer = input(f"Which one? [1-{len(choices)}, Enter = none] ").strip()
        if not (answer.isdigit() and 1 <= int(answer) <= len(choices)):
            raise
        pull.file, pull.quant = choices[int(answer) - 1].path, None
        return pull.prepare()


def _show_progress(job) -> None:
    from tqdm import tqdm

    pull, bar = job.pull, None
    try:
        while job.alive:
            job.join(0.2)
            p = pull.progress
            if bar is None and p.total:
                bar = tqdm(total=p.total, initial=p.resumed_from, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=pull.plan.name if pull.plan else "download", file=sys.stderr,
                           disable=None)  # None: a bar on a terminal, silence in a pipe
            if bar is not None:
                bar.update(p.done - bar.n)
    finally:
        if bar is not None:
            bar.close()


def cmd_rm(args) -> int:
    from jarvis.config import load_settings
    from jarvis.downloads.remove import remove_model, removable_path

    settings = load_settings(args.config)
    path = removable_path(settings, args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"jarvis rm: would delete {path}; add --yes to confirm.", file=sys.stderr)
            return 2
        if input(f"Delete {path}? [y/N] ").strip().lower() not in ("y", "yes"):
            return 1
    remove_model(settings, args.name)
    print(f"Deleted {path}")
    return 0


def print_available(table) -> int:
    """`table(rows, headers)` is the CLI's formatter, handed in: downloads never import the CLI."""
    from jarvis.downloads.curated import Machine, curated_models, fit

    machine = Machine.this()
    rows = []
    for m in curated_models():
        _, verdict = fit(m, machine)
        rows.append([f"{m.repo} {m.file}", m.kind, f"{m.approx_size_mb} MB", f"{m.memory_gb:g} GB",
                     str(m.context_length), m.licence, verdict])
    gpu = f", GPU {machine.vram_bytes / 1e9:.1f} GB" if machine.vram_bytes else ", no GPU"
    print(f"This computer: RAM {machine.ram_bytes / 1e9:.1f} GB{gpu}. Get one with: jarvis pull REPO FILE\n")
    print(table(rows, ["REPO FILE", "KIND", "SIZE", "MEMORY", "CONTEXT", "LICENCE", "THIS COMPUTER"]))
    return 0
