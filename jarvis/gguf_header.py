"""A bounds-checked reader of GGUF headers: metadata and tensor table, never the weights.

Every model file passes through here before llama.cpp's own parser sees it, so a hostile or
truncated file (absurd counts, string lengths past the end, tensors past the end) is refused
with a reason instead of reaching C code. Array contents are skipped, not materialised, which
keeps a scan of a 100 MB model to milliseconds (the `gguf` package's reader takes seconds).

Two depths: the engine's check before llama.cpp loads a file (`read_header(path)`) also refuses a
vocabulary that repeats a token, which would abort the process inside llama.cpp; the catalog's
listing (`read_header(path, check_vocab=False)`) walks past the token strings without looking at
them, since a 150k-token vocabulary is most of a header's parse time.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
MAX_TENSORS = 1_000_000
MAX_KV = 100_000
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_STRING = 64 * 2**20  # a chat template is a few KB; 64 MiB is far past any real value

# GGUF value types: id -> struct format of a scalar (None: string / array, handled apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# Metadata whose value we keep; everything else is validated and skipped.
_WANTED_PREFIXES = ("general.", "tokenizer.chat_template")
_WANTED_SUFFIXES = (".context_length", ".pooling_type")

# Tensor types: ggml type id -> (elements per block, bytes per block), and the names of
# general.file_type values. Copies of gguf.constants' GGML_QUANT_SIZES and LlamaFileType (for the
# pinned gguf; tests/test_catalog_startup.py checks they match): importing them from `gguf` runs
# its package __init__ (writer, reader, vocab, yaml), ~65 ms of GIL-bound work on the catalog's
# first scan, which the warm-up load of `jarvis serve` waits for.
GGML_TYPE_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}
LLAMA_FILE_TYPES: dict[int, str] = {
    0: "ALL_F32", 1: "MOSTLY_F16", 2: "MOSTLY_Q4_0", 3: "MOSTLY_Q4_1", 7: "MOSTLY_Q8_0", 8: "MOSTLY_Q5_0",
    9: "MOSTLY_Q5_1", 10: "MOSTLY_Q2_K", 11: "MOSTLY_Q3_K_S", 12: "MOSTLY_Q3_K_M", 13: "MOSTLY_Q3_K_L",
    14: "MOSTLY_Q4_K_S", 15: "MOSTLY_Q4_K_M", 16: "MOSTLY_Q5_K_S", 17: "MOSTLY_Q5_K_M", 18: "MOSTLY_Q6_K",
    19: "MOSTLY_IQ2_XXS", 20: "MOSTLY_IQ2_XS", 21: "MOSTLY_Q2_K_S", 22: "MOSTLY_IQ3_XS", 23: "MOSTLY_IQ3_XXS",
    24: "MOSTLY_IQ1_S", 25: "MOSTLY_IQ4_NL", 26: "MOSTLY_IQ3_S", 27: "MOSTLY_IQ3_M", 28: "MOSTLY_IQ2_S",
    29: "MOSTLY_IQ2_M", 30: "MOSTLY_IQ4_XS", 31: "MOSTLY_IQ1_M", 32: "MOSTLY_BF16", 36: "MOSTLY_TQ1_0",
    37: "MOSTLY_TQ2_0", 38: "MOSTLY_MXFP4_MOE", 39: "MOSTLY_NVFP4", 40: "MOSTLY_Q1_0", 1024: "GUESSED",
}


class GGUFError(ValueError):
    """The file is not a GGUF model we can trust; the message says why."""


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, object] = field(default_factory=dict)
    n_tensors: int = 0
    n_parameters: int = 0
    data_offset: int = 0
    tensors_offset: int = 0  # where the tensor table starts (after the metadata)
    data_end: int = 0  # the end of the last tensor's data: a file shorter than this is truncated

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    @property
    def context_length(self) -> int:
        v = self.metadata.get(f"{self.architecture}.context_length", 0)
        return int(v) if isinstance(v, int) else 0


class _Cursor:
    def __init__(self, buf, size: int):
        self.buf, self.size, self.pos = buf, size, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"truncated: {what} at byte {self.pos} needs {n} bytes but the file has {self.size}")

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize("<" + fmt)
        self.need(n, what)
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def string(self, what: str, keep: bool = True) -> str | None:
        n = self.unpack("Q", what + " length")
        if n > MAX_STRING:
            raise GGUFError(f"{what} claims a {n}-byte string, which no real model has")
        self.need(n, what)
        raw = self.buf[self.pos:self.pos + n] if keep else None
        self.pos += n
        if raw is None:
            return None
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"{what} is not valid UTF-8") from None

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n


_VOCAB = "tokenizer.ggml.tokens"
# Arrays llama.cpp indexes by token id: each must have one entry per token, or it reads past the end.
_PER_TOKEN = ("tokenizer.ggml.scores", "tokenizer.ggml.token_type")


_LENGTH = struct.Struct("<Q")  # a GGUF string's length prefix
_BLOCK = 256  # strings walked between looks at the clock
_HAND_OVER_S = 0.001  # the longest the walk holds the GIL before it hands it over


def _walk_strings(cur: _Cursor, count: int, key: str, collect: set | None = None) -> None:
    """Move past `count` length-prefixed strings without decoding them (one unpack each, no
    per-item objects), adding each string's bytes to `collect` when given. Bounds-checked: every
    string must end inside the file."""
    unpack, buf, pos = _LENGTH.unpack_from, cur.buf, cur.pos
    clock = time.perf_counter
    try:
        # In blocks of 256 strings, handing the GIL over once a millisecond: a header is read on a
        # thread that shares the GIL with the window, which would otherwise wait up to the 5 ms
        # switch interval each time (measured: the window's P99 lateness 19 -> 7 ms). By the clock,
        # not every block: each hand-over to a thread that keeps the GIL costs this read up to the
        # 5 ms switch interval, and at one per 1,024 strings (~0.15 ms here) a busy thread beside it
        # (jarvis serve's HTTP imports during the first scan) stretched a 15 ms read to ~500 ms.
        handed = clock()
        for first in range(0, count, _BLOCK):
            if first and clock() - handed >= _HAND_OVER_S:
                time.sleep(0)
                handed = clock()
            if collect is None:
                for _ in range(min(_BLOCK, count - first)):
                    pos += 8 + unpack(buf, pos)[0]
            else:
                add = collect.add
                for _ in range(min(_BLOCK, count - first)):
                    start = pos + 8
                    pos = start + unpack(buf, pos)[0]
                    add(buf[start:pos])  # an mmap slice past the end is short; the check below refuses it
    except (struct.error, OverflowError):  # a length prefix past the end of the file (or of any file)
        pos = cur.size + 1
    if pos > cur.size:
        raise GGUFError(f"truncated: the {count} strings of {key!r} run past the end of the file "
                        f"({cur.size} bytes)")
    cur.pos = pos


def _check_vocab(cur: _Cursor, count: int) -> None:
    """llama.cpp aborts the whole process (GGML_ASSERT in llama-vocab.cpp) on a vocabulary with a
    repeated token, which one flipped byte makes: refuse it here instead."""
    start, tokens = cur.pos, set()
    _walk_strings(cur, count, _VOCAB, tokens)
    if len(tokens) == count:
        return
    seen: set[bytes] = set()  # a repeat exists: walk again to name it
    for i in range(count):
        n = _LENGTH.unpack_from(cur.buf, start)[0]
        token = bytes(cur.buf[start + 8:start + 8 + n])
        start += 8 + n
        if token in seen:
            raise GGUFError(f"the vocabulary repeats token {token[:40]!r} (entry {i}): the file is corrupt")
        seen.add(token)


def _value(cur: _Cursor, vtype: int, key: str, keep: bool, arrays: dict[str, int] | None = None,
           check_vocab: bool = True):
    if vtype in _SCALARS:
        return cur.unpack(_SCALARS[vtype], f"value of {key!r}")
    if vtype == _STRING:
        return cur.string(f"value of {key!r}", keep)
    if vtype == _ARRAY:
        item_type = cur.unpack("I", f"array type of {key!r}")
        count = cur.unpack("Q", f"array length of {key!r}")
        if item_type in _SCALARS:
            cur.skip(count * struct.calcsize("<" + _SCALARS[item_type]), f"array {key!r} of {count} items")
        elif item_type == _STRING:
            if count > cur.size // 8:  # each string needs at least its 8-byte length
                raise GGUFError(f"array {key!r} claims {count} strings, more than the file can hold")
            if key == _VOCAB and check_vocab:
                _check_vocab(cur, count)
            else:  # token strings, merges, ...: nothing we keep
                _walk_strings(cur, count, key)
        else:
            raise GGUFError(f"array {key!r} has unsupported item type {item_type}")
        if arrays is not None and key.startswith("tokenizer.ggml."):
            arrays[key] = count
        return None
    raise GGUFError(f"metadata key {key!r} has unknown value type {vtype}")


def read_header(path: str | Path, *, check_vocab: bool = True) -> GGUFHeader:
    """Parse and validate a GGUF file's header. Raises GGUFError (or OSError for I/O).

    `check_vocab=False` (a listing, not a load) skips the repeated-token check of the vocabulary:
    its strings are walked past, not read. Everything else is checked the same."""
    path = Path(path)
    if path.is_dir():
        raise GGUFError("is a directory, not a file")
    # O_NONBLOCK: a FIFO named x.gguf would otherwise block open() until a writer shows up, and
    # the catalog scan (and with it the app) would hang. Anything but a regular file is refused.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise GGUFError("is not a regular file (a pipe, socket or device), so it cannot be a model")
        size = f.seek(0, 2)
        if size < 24:
            raise GGUFError(f"file is {size} bytes, too small to be a GGUF model (empty or truncated)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Cursor(buf, size), check_vocab)


def _parse(cur: _Cursor, check_vocab: bool = True) -> GGUFHeader:
    magic = bytes(cur.buf[0:4])
    if magic != MAGIC:
        raise GGUFError(f"not a GGUF file (magic bytes {magic!r}, expected b'GGUF')")
    cur.pos = 4
    version = cur.unpack("I", "version")
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version} (supported: 2, 3)")
    n_tensors = cur.unpack("Q", "tensor count")
    n_kv = cur.unpack("Q", "metadata count")
    if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
        raise GGUFError(f"header claims {n_tensors} tensors and {n_kv} metadata keys, which is not a real model")
    header = GGUFHeader(version=version, n_tensors=n_tensors)
    arrays: dict[str, int] = {}  # tokenizer.ggml.* array lengths, checked against each other

    for _ in range(n_kv):
        key = cur.string("a metadata key")
        vtype = cur.unpack("I", f"type of {key!r}")
        keep = key.startswith(_WANTED_PREFIXES) or key.endswith(_WANTED_SUFFIXES)
        value = _value(cur, vtype, key, keep, arrays, check_vocab)
        if keep and value is not None:
            header.metadata[key] = value
    if _VOCAB in arrays:
        for key in _PER_TOKEN:
            if key in arrays and arrays[key] != arrays[_VOCAB]:
                raise GGUFError(f"{key!r} has {arrays[key]} entries but the vocabulary has {arrays[_VOCAB]} tokens")

    header.tensors_offset = cur.pos
    tensors: list[tuple[str, int, int, int]] = []  # name, type, offset, elements
    for _ in range(n_tensors):
        name = cur.string("a tensor name")
        n_dims = cur.unpack("I", f"dimensions of tensor {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"tensor {name!r} claims {n_dims} dimensions (at most {MAX_DIMS})")
        elements = 1
        for _ in range(n_dims):
            dim = cur.unpack("Q", f"a dimension of tensor {name!r}")
            if dim == 0 or dim > 2**40:
                raise GGUFError(f"tensor {name!r} has an impossible dimension {dim}")
            elements *= dim
        ttype = cur.unpack("I", f"type of tensor {name!r}")
        offset = cur.unpack("Q", f"offset of tensor {name!r}")
        tensors.append((name, ttype, offset, elements))
    if not tensors:
        raise GGUFError("the file holds no tensors")

    alignment = header.metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"general.alignment = {alignment!r} is not a power of two")
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    for name, ttype, offset, elements in tensors:
        sizes = GGML_TYPE_SIZES.get(ttype)
        if sizes is None:
            raise GGUFError(f"tensor {name!r} has unknown type {ttype}")
        block, type_size = sizes
        if offset % alignment:  # llama.cpp refuses these too; say so before it is asked
            raise GGUFError(f"tensor {name!r} starts at offset {offset}, not a multiple of "
                            f"general.alignment = {alignment}")
        if elements % block:
            raise GGUFError(f"tensor {name!r} has {elements} elements, not a multiple of its block size {block}")
        end = data_offset + offset + elements // block * type_size
        if end > cur.size:
            raise GGUFError(f"truncated: tensor {name!r} ends at byte {end} but the file has {cur.size} bytes "
                            "(an incomplete download?)")
        header.n_parameters += elements
        header.data_end = max(header.data_end, end)
    header.data_offset = data_offset
    return header
