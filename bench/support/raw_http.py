"""HTTP/1.1 over a bare socket: requests no client library would send (lying Content-Length,
header injection, junk methods), and replies read whatever shape they come in."""

from __future__ import annotations

import contextlib
import socket


def build_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes,
                  content_length: int | None) -> bytes:
    """The bytes of a request, exactly as given (nothing escaped), with Connection: close."""
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send raw bytes and read the reply (Connection: close). When nothing comes back within
    `timeout` (the server may wait for body bytes a lying Content-Length promised), half-close
    and wait once more; a second silence raises socket.timeout: a hang. Returns (status, raw)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:  # the server may answer and close before reading it all
            pass
        chunks: list[bytes] = []
        for attempt in range(2):
            try:
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                break
            except ConnectionResetError:
                break
            except socket.timeout:
                if attempt or chunks:
                    raise
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/1."):
        return None, raw
    try:
        return int(raw.split(b" ", 2)[1]), raw
    except (IndexError, ValueError):
        return None, raw
