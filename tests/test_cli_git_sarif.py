"""check --git (history) and --format sarif through the CLI."""
from __future__ import annotations

import json
import os
import subprocess

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.org",
           "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.org"}


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=GIT_ENV).stdout.strip()


def test_check_git_finds_copy_deleted_later_and_names_the_commit(cli, home, samples, tmp_path):
    cli("init")
    cli("register", samples / "registered" / "en_soil.txt", "--owner", "Ann")
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    (repo / "notes.md").write_text("# Notes\nOur own words about the project and nothing else.\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "start")
    (repo / "soil.txt").write_bytes((samples / "registered" / "en_soil.txt").read_bytes())
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "paste")
    pasted = _git(repo, "rev-parse", "HEAD")
    (repo / "soil.txt").unlink()
    _git(repo, "commit", "-qam", "remove")
    rc, out, err = cli("check", "--git", repo, "--format", "json")
    assert rc == 1, err
    (match,) = json.loads(out)["matches"]
    assert match["extra"]["commit"] == pasted and match["query"]["path"] == f"{pasted[:12]}:soil.txt"
    rc, out, err = cli("check", "--rev-range", "HEAD~1..HEAD")
    assert rc == 2 and "needs --git" in err


def test_check_format_sarif(cli, home, samples):
    cli("init")
    cli("register", samples / "registered" / "en_lighthouse.md", "--owner", "Ann", "--license", "CC-BY-4.0")
    rc, out, err = cli("check", samples / "suspects" / "en_partial.txt", "--format", "sarif")
    assert rc == 1, err
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "copyscope/text-copy" and result["level"] == "error"
    assert "CC-BY-4.0" in result["message"]["text"]
