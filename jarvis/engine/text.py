"""Turning sampled token bytes into text that is safe to show as it streams.

Two rules: a UTF-8 character split across tokens is held back until it is whole, and text that
might be the start of a stop string is held back until it is known not to be one.
"""

from __future__ import annotations

import codecs


class StreamingText:
    """Feed token bytes, get back the text that can be released now."""

    def __init__(self, stop: tuple[str, ...] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._held = ""  # decoded text not yet released (could begin a stop string)
        self.stopped = False  # a stop string was found; the rest is discarded
        self.matched = ""  # which one (the earliest in the text; the longest of those starting there)

    def feed(self, data: bytes) -> str:
        if self.stopped:
            return ""
        self._held += self._decoder.decode(data)
        return self._release()

    def finish(self) -> str:
        """End of generation: release whatever is still held (never a stop string). A character
        cut off by max_tokens is dropped rather than shown as a replacement character."""
        if self.stopped:
            return ""
        self._decoder.reset()
        out, self._held = self._held, ""
        return out

    def _release(self) -> str:
        if not self._stop:
            out, self._held = self._held, ""
            return out
        # A complete stop string: release what precedes it, discard it and everything after.
        hits = [(self._held.find(s), s) for s in self._stop]
        hits = [(i, s) for i, s in hits if i >= 0]
        if hits:
            cut = min(i for i, _ in hits)
            self.matched = max((s for i, s in hits if i == cut), key=len)
            out = self._held[:cut]
            self._held = ""
            self.stopped = True
            return out
        # Hold back the longest tail that is a prefix of some stop string.
        keep = 0
        for s in self._stop:
            for n in range(min(len(s) - 1, len(self._held)), 0, -1):
                if self._held.endswith(s[:n]):
                    keep = max(keep, n)
                    break
        cut = len(self._held) - keep
        out, self._held = self._held[:cut], self._held[cut:]
        return out
