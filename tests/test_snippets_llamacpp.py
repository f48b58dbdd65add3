"""The llama.cpp snippets use flags the installed llama-server accepts (its --help), when one is installed."""

import glob
import os
import re
import subprocess

import pytest

from specdec.present import snippets

SERVERS = sorted(glob.glob(os.path.expanduser("~/.cache/specdec/llama.cpp/*/bin/llama-server")))


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", text))


@pytest.mark.skipif(not SERVERS, reason="no llama-server built under ~/.cache/specdec/llama.cpp (engine install script)")
def test_llamacpp_snippet_flags_exist_in_help():
    out = subprocess.run([SERVERS[-1], "--help"], capture_output=True, text=True, timeout=60)
    help_flags = _flags(out.stdout + out.stderr)
    for method in ("draft", "prompt-lookup"):
        text = snippets.snippets(method, 4, "t/t", "d/d")["llama.cpp"]
        body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        used = _flags(body) - {"-m"} | ({"-md"} if "-md" in body else set())
        missing = sorted(f for f in used if f not in help_flags)
        assert not missing, f"{method}: {missing} not in {SERVERS[-1]} --help"


def test_llamacpp_snippets_use_the_renamed_flags():
    def body(text):  # the command, not the comments above it (which name the old flags for old builds)
        return "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    draft = body(snippets.snippets("draft", 3, "t/t", "d/d")["llama.cpp"])
    lookup = body(snippets.snippets("prompt-lookup", 3, "t/t")["llama.cpp"])
    assert "--spec-type draft-simple" in draft and "--spec-draft-n-max 3" in draft
    assert "--spec-ngram-simple-size-n" in lookup and "--spec-ngram-size-n" not in lookup
    assert "--draft-max" not in draft + lookup and "--draft-min" not in draft + lookup
