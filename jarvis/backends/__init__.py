"""The backend seam: every kind of model (an in-process llama.cpp engine, a remote server; later a
vision or speech backend) serves requests through one protocol and declares what it can do.

- base: `Capability`, the `Backend` protocol (submit / stream / cancel / status), `Lease`, and the
  `ModelSource` protocol a kind of backend implements to be found, prepared and leased
- registry: `BackendRegistry`, the one place that maps a catalog model to the source that serves it

The Assistant, the cache, HTTP, telemetry and the desktop ask the registry and the capabilities,
never "is this remote?" (docs/ARCHITECTURE.md, "How to add a backend").
"""

from jarvis.backends.base import Backend, Capability, Lease, ModelSource, require
from jarvis.backends.registry import BackendRegistry

__all__ = ["Backend", "BackendRegistry", "Capability", "Lease", "ModelSource", "require"]
