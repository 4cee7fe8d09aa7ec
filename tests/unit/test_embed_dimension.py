"""An embeddings server that changes its model (and so its vectors' dimension) behind the same URL:
every search and every sync checks the vectors against the index's, and says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kb.cli.main import app
from tests.support.files import write
from tests.support.servers import ScriptedEmbeddings

runner = CliRunner()


def test_a_server_whose_dimension_changed_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = tmp_path / "notes"
    write(vault / "a.md", "# A\n\nThe backup job runs restic every night.\n")
    with ScriptedEmbeddings(model="test-embedder", dim=64) as server:
        monkeypatch.setenv("KB_EMBED__URL", server.url)
        monkeypatch.setenv("KB_EMBED_MODEL", "test-embedder")
        assert runner.invoke(app, ["ingest", str(vault)]).exit_code == 0
        server.dim = 96  # another model behind the same URL

        r = runner.invoke(app, ["search", "restic backup"])
        assert r.exit_code == 5, r.output
        assert "96" in r.output and "64" in r.output and "Traceback" not in r.output
        assert "KB_EMBED_MODEL" in r.output  # the remedy names what to set

        write(vault / "b.md", "# B\n\nA new note about the garden.\n")
        r = runner.invoke(app, ["ingest", str(vault)])
        assert r.exit_code == 5, r.output
        assert "96" in r.output and "Traceback" not in r.output
        status = runner.invoke(app, ["status", "--json"])
        assert '"failed"' not in status.output  # no note is blamed for the server's change

        server.dim = 64  # the remedy: serve the model the index was built with again
        assert runner.invoke(app, ["ingest", str(vault)]).exit_code == 0
        assert runner.invoke(app, ["search", "garden"]).exit_code == 0
