"""The start-up benches compile a package's bytecode where it lies, as pip does for a wheel it installs
(jarvis/bench/bytecode.py): a checkout under PYTHONDONTWRITEBYTECODE must not compile at every launch."""

from __future__ import annotations

import sys

from jarvis.bench.bytecode import compile_packages


def test_compile_packages_writes_each_modules_bytecode_beside_it(tmp_path, monkeypatch):
    package = tmp_path / "startup_probe_pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "work.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert compile_packages("startup_probe_pkg", "no_such_package_here") == [str(package)]
    tag = sys.implementation.cache_tag
    assert (package / "inner" / "__pycache__" / f"work.{tag}.pyc").is_file()
    assert (package / "__pycache__" / f"__init__.{tag}.pyc").is_file()
