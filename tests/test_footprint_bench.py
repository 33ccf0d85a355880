"""footprint_bench (jarvis/bench/footprint_bench.py): what its `jarvis serve` leaves behind (the
start-up and memory figures themselves live in the bench, never in a test)."""

import gc
from pathlib import Path

from jarvis.bench.footprint_bench import jarvis_server


def test_the_servers_data_folder_goes_with_it():
    server = jarvis_server(threads=1)
    folder = Path(server.env["JARVIS_GENERAL_DATA_DIR"])
    (folder / "history.sqlite").write_bytes(b"x")  # what its rounds write there
    assert folder.is_dir()
    del server
    gc.collect()
    assert not folder.exists()
