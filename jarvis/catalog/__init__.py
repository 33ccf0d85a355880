"""The model catalog: what each model file is (model_info), which files exist as a snapshot a
scan replaces (scanner), and the child process that reads many headers at once (reader).

Import the public names from here: `from jarvis.catalog import Catalog, ModelInfo, ...`.
"""

from jarvis.catalog.model_info import (BUNDLED_FILE, BUNDLED_PACKAGE, ENCODER_ARCHITECTURES, LocalModel, ModelInfo, RemoteModel,
                                       bundled_model_path, read_gguf_info)
from jarvis.catalog.scanner import IN_THREAD_MAX, Catalog, CatalogSnapshot

__all__ = ["BUNDLED_FILE", "BUNDLED_PACKAGE", "ENCODER_ARCHITECTURES", "IN_THREAD_MAX", "Catalog", "CatalogSnapshot",
           "LocalModel", "ModelInfo", "RemoteModel", "bundled_model_path", "read_gguf_info"]
