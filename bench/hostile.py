"""A corpus of hostile GGUF files, generated on the spot (never committed as binaries).

`build_corpus(folder, real_model, n_truncations)` writes every case into `folder` and returns
{file name: what is wrong with it}. The tests and `make reliability` share it.
"""

from __future__ import annotations

import math
import os
import random
import socket
import struct
from pathlib import Path

from jarvis.gguf_header import read_header

# GGUF value types used below
U32, I32, STRING, ARRAY, U64 = 4, 5, 8, 9, 10


def _s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_string(key: str, value: str) -> bytes:
    return _s(key) + struct.pack("<I", STRING) + _s(value)


def kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<I", U32) + struct.pack("<I", value)


def tensor_info(name: str, dims: list[int], ttype: int = 0, offset: int = 0, n_dims: int | None = None) -> bytes:
    out = _s(name) + struct.pack("<I", len(dims) if n_dims is None else n_dims)
    out += b"".join(struct.pack("<Q", d) for d in dims)
    return out + struct.pack("<IQ", ttype, offset)


def gguf(kvs: list[bytes], tensors: list[bytes], *, version: int = 3, n_tensors: int | None = None,
         n_kv: int | None = None, alignment: int = 32, data: bytes = b"\0" * 128) -> bytes:
    """A GGUF file from raw pieces; the counts may lie."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    pad = (-len(body)) % alignment if alignment > 0 else 0
    return body + b"\0" * pad + data


ARCH = kv_string("general.architecture", "llama")
ONE_TENSOR = [tensor_info("token_embd.weight", [32])]  # 32 F32 = 128 bytes of data


def synthetic_cases(rng: random.Random) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what is wrong). Each is small."""
    cases: dict[str, tuple[bytes, str]] = {
        "empty": (b"", "empty file"),
        "tiny": (b"GGUF", "4 bytes"),
        "wrong_magic": (b"GGML" + struct.pack("<IQQ", 3, 1, 1) + os.urandom(256), "wrong magic"),
        "text_file": (b"hello, I am not a model\n" * 20, "a text file"),
        "version_99": (gguf([ARCH], ONE_TENSOR, version=99), "unsupported version"),
        "version_0": (gguf([ARCH], ONE_TENSOR, version=0), "unsupported version"),
        "absurd_tensor_count": (gguf([ARCH], ONE_TENSOR, n_tensors=2**63), "tensor count 2^63"),
        "absurd_kv_count": (gguf([ARCH], ONE_TENSOR, n_kv=2**62), "kv count 2^62"),
        "kv_count_past_end": (gguf([ARCH], ONE_TENSOR, n_kv=50_000), "50000 kvs in a 300-byte file"),
        "tensor_count_past_end": (gguf([ARCH], ONE_TENSOR, n_tensors=900_000), "900000 tensors, 1 present"),
        "absurd_key_length": (gguf([struct.pack("<Q", 2**62) + b"general.x"], ONE_TENSOR), "key length 2^62"),
        "key_length_past_end": (gguf([struct.pack("<Q", 10_000) + b"general.x"], ONE_TENSOR), "key past end"),
        "absurd_string_value": (gguf([_s("general.name") + struct.pack("<IQ", STRING, 2**63 - 1)], ONE_TENSOR),
                                "string value 2^63 bytes"),
        "absurd_u32_array": (gguf([_s("tokenizer.ggml.scores") + struct.pack("<IIQ", ARRAY, U32, 2**61)], ONE_TENSOR),
                             "u32 array of 2^61 items"),
        "absurd_string_array": (gguf([_s("tokenizer.ggml.tokens") + struct.pack("<IIQ", ARRAY, STRING, 2**40)],
                                     ONE_TENSOR), "string array of 2^40 items"),
        "nested_array": (gguf([_s("general.x") + struct.pack("<IIQ", ARRAY, ARRAY, 3)], ONE_TENSOR), "array of arrays"),
        "unknown_value_type": (gguf([_s("general.x") + struct.pack("<I", 99) + b"\0" * 8], ONE_TENSOR),
                               "value type 99"),
        "invalid_utf8_key": (gguf([_s(b"general.\xff\xfe") + struct.pack("<II", U32, 1)], ONE_TENSOR), "key not UTF-8"),
        "n_dims_5": (gguf([ARCH], [tensor_info("t", [2, 2, 2, 2, 2])]), "5 dimensions"),
        "n_dims_0": (gguf([ARCH], [tensor_info("t", [], n_dims=0)]), "0 dimensions"),
        "n_dims_huge": (gguf([ARCH], [tensor_info("t", [1], n_dims=2**31)]), "2^31 dimensions"),
        "zero_dimension": (gguf([ARCH], [tensor_info("t", [0])]), "a dimension of 0"),
        "huge_dimension": (gguf([ARCH], [tensor_info("t", [2**62])]), "a dimension of 2^62"),
        "tensor_type_9999": (gguf([ARCH], [tensor_info("t", [32], ttype=9999)]), "tensor type 9999"),
        "tensor_type_4": (gguf([ARCH], [tensor_info("t", [32], ttype=4)]), "tensor type 4 (removed Q4_2)"),
        "block_size_mismatch": (gguf([ARCH], [tensor_info("t", [33], ttype=2)]), "Q4_0 with 33 elements"),
        "tensor_past_end": (gguf([ARCH], [tensor_info("t", [32], offset=4096)]), "tensor data past the end"),
        "tensor_offset_misaligned": (gguf([ARCH], [tensor_info("t", [8], offset=3)]), "offset 3, alignment 32"),
        "no_tensors": (gguf([ARCH], []), "no tensors"),
        "header_ok_not_a_model": (gguf([ARCH], ONE_TENSOR), "valid header, not a loadable llama model"),
        "header_ok_unknown_arch": (gguf([kv_string("general.architecture", "hostile-arch")], ONE_TENSOR),
                                   "valid header, unknown architecture"),
    }
    for value in (0, 3, 48, 2**31 + 1):
        cases[f"alignment_{value}"] = (gguf([ARCH, kv_u32("general.alignment", value)], ONE_TENSOR),
                                       f"general.alignment = {value}")
    for i in range(3):
        cases[f"random_after_header_{i}"] = (b"GGUF" + struct.pack("<I", 3) + rng.randbytes(2048 * (i + 1)),
                                             "valid magic+version, random bytes after")
    return cases


def truncation_offsets(model: Path, n_random: int, rng: random.Random) -> list[int]:
    """The header's own boundaries plus `n_random` offsets spread log-uniformly over the file."""
    h = read_header(model)
    edges = {1, 4, 8, 16, 23, 24, 25, 32, h.tensors_offset - 1, h.tensors_offset, h.tensors_offset + 1,
             h.data_offset - 1, h.data_offset, h.data_offset + 1, (h.data_offset + h.data_end) // 2,
             h.data_end - 1}
    for _ in range(n_random):
        edges.add(int(math.exp(rng.uniform(math.log(2), math.log(h.data_end - 1)))))
    return sorted(o for o in edges if 0 < o < h.data_end)


def write_truncated(model: Path, target: Path, length: int) -> None:
    with open(model, "rb") as src, open(target, "wb") as dst:
        left = length
        while left:
            chunk = src.read(min(left, 8 << 20))
            dst.write(chunk)
            left -= len(chunk)


def build_corpus(folder: Path, model: Path, n_truncations: int, seed: int = 0) -> tuple[dict[str, str], list]:
    """Write the corpus into `folder` (made if need be). Returns ({file name: defect}, [things to
    clean up, e.g. bound sockets])."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, str] = {}
    keep: list = []
    for name, (data, why) in synthetic_cases(rng).items():
        (folder / f"{name}.gguf").write_bytes(data)
        corpus[f"{name}.gguf"] = why
    for offset in truncation_offsets(model, n_truncations, rng):
        name = f"truncated_at_{offset}.gguf"
        write_truncated(model, folder / name, offset)
        corpus[name] = f"the real model cut at byte {offset}"
    # Things that are not regular files.
    (folder / "a_directory.gguf").mkdir(exist_ok=True)
    corpus["a_directory.gguf"] = "a directory"
    loop_a, loop_b = folder / "loop_a.gguf", folder / "loop_b.gguf"
    for link, target in ((loop_a, loop_b), (loop_b, loop_a)):
        if not link.is_symlink():
            link.symlink_to(target.name)
        corpus[link.name] = "symlink loop"
    dangling = folder / "dangling.gguf"
    if not dangling.is_symlink():
        dangling.symlink_to("does-not-exist.gguf")
    corpus[dangling.name] = "dangling symlink"
    fifo = folder / "a_fifo.gguf"
    if not fifo.exists():
        os.mkfifo(fifo)
    corpus[fifo.name] = "a named pipe (open() would block)"
    sock_path = folder / "a_socket.gguf"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(sock_path))
        keep.append(sock)
        corpus[sock_path.name] = "a unix socket (cannot be opened)"
    except OSError:
        sock.close()
    dev = folder / "dev_zero.gguf"
    if not dev.is_symlink():
        dev.symlink_to("/dev/zero")
    corpus[dev.name] = "a character device (/dev/zero)"
    # chmod 000 binds only non-root users; as root the file stays readable, so it is listed only
    # when the permission really holds (the pipe and socket above stand in for "cannot read").
    unreadable = folder / "unreadable.gguf"
    unreadable.write_bytes(gguf([ARCH], ONE_TENSOR))
    unreadable.chmod(0)
    try:
        unreadable.open("rb").close()
        unreadable.chmod(0o644)
        unreadable.unlink()
    except PermissionError:
        corpus[unreadable.name] = "no read permission"
    return corpus, keep
