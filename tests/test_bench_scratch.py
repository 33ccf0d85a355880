"""The benches' temporary folders (jarvis/bench/scratch.py): a bench's servers' data folders are
gone once the bench's process has exited (the figures themselves live in the benches)."""

import subprocess
import sys
from pathlib import Path


def _folders_made_by(code: str) -> list[Path]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return [Path(line) for line in out.stdout.split()]


def test_a_scratch_folder_and_what_was_written_in_it_are_gone_when_the_bench_exits():
    [folder] = _folders_made_by(
        "from pathlib import Path\n"
        "from jarvis.bench.scratch import scratch_dir\n"
        "d = Path(scratch_dir('jarvis-test-scratch-'))\n"
        "(d / 'history').mkdir(); (d / 'history' / 'requests.sqlite').write_bytes(b'x')\n"
        "print(d)\n")
    assert folder.name.startswith("jarvis-test-scratch-")
    assert not folder.exists()


def test_the_footprint_benchs_jarvis_serve_keeps_its_data_in_one():
    [folder] = _folders_made_by(
        "from jarvis.bench.footprint_bench import jarvis_server\n"
        "import os\n"
        "d = jarvis_server(threads=1).env['JARVIS_GENERAL_DATA_DIR']\n"
        "assert os.path.isdir(d)\n"
        "print(d)\n")
    assert not folder.exists()
