"""Workload parsing, validation, sampling and prompt encoding (specdec/workloads.py)."""

import codecs
import json
import re
from pathlib import Path

import pytest

from specdec import config
from specdec.present import views
from specdec.cli import main
from specdec.errors import SpecdecError
from specdec.measure.workloads import Prompt, encode_prompt, format_summary, load_workload, token_report

SAMPLES = Path(__file__).resolve().parents[1] / "sample_workloads"


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def fails(tmp_path, name, content, *patterns, **kwargs):
    """Loading raises SpecdecError: one line, naming the file, matching every pattern."""
    with pytest.raises(SpecdecError) as info:
        load_workload(write(tmp_path, name, content), **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(name + ":")
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


# ---- formats --------------------------------------------------------------------------------

def test_csv_with_optional_columns_and_multiline_field(tmp_path):
    path = write(tmp_path, "w.csv", 'id,Prompt,category,system\n'
                 'a1,"Fix this:\ndef f(x):\n    return x+1",code,You are terse.\n'
                 'a2,"Say hi, politely",chat,\n')
    w = load_workload(path)
    assert w.format == "csv" and [p.id for p in w.prompts] == ["a1", "a2"]
    first, second = w.prompts
    assert first.text == "Fix this:\ndef f(x):\n    return x+1"
    assert first.system == "You are terse." and second.system is None
    assert (first.source_line, second.source_line) == (2, 5)
    assert w.categories() == {"code": 1, "chat": 1}
    assert w.skipped == [] and w.warnings[-1].startswith("2 categories have fewer than")


def test_tsv_and_semicolon_csv(tmp_path):
    w = load_workload(write(tmp_path, "w.tsv", "prompt\tcategory\nTranslate 'cat' to French\ttranslation\n"))
    assert w.format == "tsv" and w.prompts[0].category == "translation"
    w = load_workload(write(tmp_path, "w.csv", "prompt;category\nHello, world;chat\n"))
    assert w.prompts[0].text == "Hello, world"


def test_jsonl_prompt_chat_turns_and_sharegpt(tmp_path):
    lines = [
        {"prompt": "plain", "category": "a"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"},
                      {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
                      {"role": "assistant", "content": "reference answer"}], "category": "chat"},
        {"question_id": 81, "category": "writing", "turns": ["first turn", "second turn"]},
        {"conversations": [{"from": "human", "value": "hello there"}]},
        "a bare string",
    ]
    w = load_workload(write(tmp_path, "w.jsonl", "\n".join(json.dumps(x) for x in lines)))
    plain, chat, mt, share, bare = w.prompts
    assert plain.messages is None and plain.category == "a" and plain.id == "L1"
    assert chat.text == "Q2" and chat.system == "Be brief."
    assert [m["role"] for m in chat.messages] == ["system", "user", "assistant", "user"]  # answer dropped
    assert mt.text == "first turn" and mt.id == "81" and mt.category == "writing"
    assert share.messages == ({"role": "user", "content": "hello there"},)
    assert bare.text == "a bare string" and bare.category == config.DEFAULT_CATEGORY
    joined = " | ".join(w.warnings)
    assert "assistant turn" in joined and "line 2" in joined
    assert "only the first turn" in joined and "line 3" in joined


def test_json_array_reports_item_lines(tmp_path):
    text = '[\n  {"prompt": "one"},\n\n  {"prompt": "two",\n   "category": "x"}\n]\n'
    w = load_workload(write(tmp_path, "w.json", text))
    assert w.format == "json" and [(p.text, p.source_line) for p in w.prompts] == [("one", 2), ("two", 4)]
    single = load_workload(write(tmp_path, "one.json", '{\n  "prompt": "solo"\n}'))
    assert [p.text for p in single.prompts] == ["solo"]


def test_text_blocks_with_category_lines(tmp_path):
    text = ("# category: code\nWrite a function.\n\n    It should be fast.\n---\n"
            "Second prompt\n---\n# category: math\nWhat is 2+2?\n---\n")
    w = load_workload(write(tmp_path, "w.txt", text))
    assert w.format == "text"
    assert [(p.category, p.source_line) for p in w.prompts] == [("code", 2), ("code", 6), ("math", 9)]
    assert w.prompts[0].text == "Write a function.\n\n    It should be fast."
    assert w.skipped == []


def test_text_one_prompt_per_line(tmp_path):
    w = load_workload(write(tmp_path, "w.txt", "first\n\nsecond\n# category: qa\nthird\n"))
    assert [(p.text, p.category, p.source_line) for p in w.prompts] == [
        ("first", "uncategorised", 1), ("second", "uncategorised", 3), ("third", "qa", 5)]


def test_content_beats_extension(tmp_path):
    w = load_workload(write(tmp_path, "w.txt", '{"prompt": "x"}\n{"prompt": "y"}\n'))
    assert w.format == "jsonl" and "content is JSON Lines" in w.warnings[0]
    w = load_workload(write(tmp_path, "data", "prompt,category\nhello,chat\n"))
    assert w.format == "csv" and w.prompts[0].category == "chat"
    w = load_workload(write(tmp_path, "w.txt", "[INST] not json [/INST]\nsecond line\n"))
    assert w.format == "text" and len(w.prompts) == 2


def test_bytes_upload_bom_and_utf16(tmp_path):
    w = load_workload(codecs.BOM_UTF8 + "prompt\nhéllo\n".encode(), name="up.csv")
    assert w.name == "up.csv" and w.path is None and w.prompts[0].text == "héllo"
    w = load_workload("prompt\r\nhello\r\n".encode("utf-16"), name="excel.csv")
    assert w.prompts[0].text == "hello" and "UTF-16" in w.warnings[0]


def test_category_field_and_prompt_alias(tmp_path):
    path = write(tmp_path, "w.jsonl", '{"question": "q1", "task": "t"}\n{"question": "q2"}\n')
    w = load_workload(path, category_field="task")
    assert [p.category for p in w.prompts] == ["t", "uncategorised"]
    joined = " | ".join(w.warnings)
    assert "used 'question' as the prompt (lines 1-2)" in joined and "no 'task' value" in joined


def test_duplicates_and_ids_are_kept_and_reported(tmp_path):
    w = load_workload(write(tmp_path, "w.csv", "id,prompt\n1,same\n1,same\n1-2,other\n"))
    assert [p.id for p in w.prompts] == ["1", "1-2", "1-2-2"]
    assert "row 3 (line 3): duplicate of row 2 (line 2) (kept)" in w.warnings
    assert any("repeated id '1'" in x for x in w.warnings)


def test_summary_lengths_and_format(tmp_path):
    w = load_workload(write(tmp_path, "w.jsonl", '{"prompt": "one two three"}\n{"prompt": "four"}\n'))
    s = w.summary()
    assert s["length_words"]["max"] == 3 and s["length_chars"]["min"] == 4
    assert s["categories"] == {"uncategorised": 2} and s["format"] == "jsonl"
    assert s["per_category"]["uncategorised"]["words"]["median"] == 2.0
    text = format_summary(s)
    assert "uncategorised" in text and "warnings (1)" in text and "skipped (0)" in text


# ---- bad input --------------------------------------------------------------------------------

def test_empty_files(tmp_path):
    fails(tmp_path, "e.csv", b"", "empty file")
    fails(tmp_path, "e.txt", "  \n\n ", "empty file")


def test_not_utf8_names_line_and_encoding(tmp_path):
    fails(tmp_path, "w.csv", "prompt\nfine\ncaf\u00e9 au lait\n".encode("cp1252"),
          r"line 3, column 4", "not UTF-8", "Windows-1252")
    fails(tmp_path, "w.txt", "prompt\nhello\n".encode("utf-16-le"), "line 1", "UTF-16-LE")


def test_binary_files(tmp_path):
    fails(tmp_path, "w.csv", b"prompt\nok\nab\x00\x01\x02cd\n", "line 3", "binary")
    fails(tmp_path, "w.csv", b"%PDF-1.7\n...", "line 1", "PDF")
    fails(tmp_path, "w.csv", b"PK\x03\x04rest", "line 1", "xlsx")


def test_missing_prompt_column_or_field_lists_what_was_found(tmp_path):
    fails(tmp_path, "w.csv", "Title,Body\na,b\n", r"row 1 \(header, line 1\)", "no 'prompt' column",
          "'Title', 'Body'")
    fails(tmp_path, "w.jsonl", '{"title": "a", "body": "b"}\n', "line 1", "no prompt field", "title, body")


def test_malformed_json_line_skipped_or_fatal(tmp_path):
    content = '{"prompt": "ok"}\n{"prompt": "broken\n{"prompt": "fine"}\n'
    w = load_workload(write(tmp_path, "w.jsonl", content))
    assert len(w.prompts) == 2 and len(w.skipped) == 1
    assert w.skipped[0].startswith("line 2: malformed JSON")
    fails(tmp_path, "w.jsonl", content, "line 2", "malformed JSON", strict=True)
    fails(tmp_path, "w.jsonl", '{"prompt": \n{"prompt": \n', "no usable prompts", "line 1: malformed")
    fails(tmp_path, "w.json", '[\n {"prompt": "a"},\n {"prompt": "b"},\n]\n', "line 4", "malformed JSON")
    fails(tmp_path, "w.json", "just words\n", "line 1", "expected JSON")


def test_malformed_csv(tmp_path):
    fails(tmp_path, "w.csv", 'prompt,category\nok,a\n"unclosed,b\nmore\n', r"row 3 \(line 3\)", "malformed CSV")
    w = load_workload(write(tmp_path, "w.csv", "prompt,category\nok,a\nsplit, by comma,b\n"))
    assert w.skipped == ["row 3 (line 3): 3 values but the header has 2 columns "
                         "(an unquoted delimiter inside the prompt?), skipped"]
    fails(tmp_path, "w.csv", "prompt,category\nok,a\nsplit, by comma,b\n", "row 3", "3 values", strict=True)


def test_empty_prompts_skipped_and_reported(tmp_path):
    w = load_workload(write(tmp_path, "w.csv", 'prompt,category\n"  ",a\nreal,a\n'))
    assert w.skipped == ["row 2 (line 2): empty prompt, skipped"] and len(w.prompts) == 1
    w = load_workload(write(tmp_path, "w.txt", "one\n---\n\n---\ntwo\n"))
    assert w.skipped == ["line 4: empty prompt between '---' separators, skipped"]
    fails(tmp_path, "w.jsonl", '{"prompt": ""}\n{"prompt": "x"}\n', "line 1", "empty prompt", strict=True)


def test_the_real_size_caps_with_sparse_files(tmp_path):
    """config's 50 MB workload cap and 512 MB results cap, on sparse files one byte over each cap: the file
    is refused from its size, before anything is read (a sparse file costs no disk and no RAM)."""
    from specdec import config, results
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as f:
        f.truncate(config.MAX_WORKLOAD_BYTES + 1)
    with pytest.raises(SpecdecError, match=r"big.jsonl: .* over the .* limit"):
        load_workload(big)
    with pytest.raises(SpecdecError, match=r"upload.txt: .* over the .* limit"):  # an upload's bytes: same cap
        load_workload(bytes(config.MAX_WORKLOAD_BYTES + 1), name="upload.txt")
    with open(big, "r+b") as f:  # exactly at the cap is allowed past the size check (then fails as content)
        f.truncate(config.MAX_WORKLOAD_BYTES)
    with pytest.raises(SpecdecError) as exc:
        load_workload(big)
    assert "over the" not in str(exc.value)
    import tomllib  # the app's upload widget refuses at the same size as the loader
    streamlit = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())
    assert streamlit["server"]["maxUploadSize"] * 2**20 == config.MAX_WORKLOAD_BYTES
    huge = tmp_path / "results.json"
    with open(huge, "wb") as f:
        f.truncate(config.MAX_RESULTS_BYTES + 1)
    with pytest.raises(SpecdecError, match="too large for a results file .*512 MB"):
        results.load(huge)


def test_size_cap_and_missing_file(tmp_path):
    fails(tmp_path, "big.txt", "x" * 2000, "over the", "limit", max_bytes=1000)
    with pytest.raises(SpecdecError, match="nope.csv: no such file"):
        load_workload(tmp_path / "nope.csv")
    with pytest.raises(SpecdecError, match="up.txt: .* over the"):
        load_workload(b"y" * 2000, name="up.txt", max_bytes=1000)


def test_category_field_missing_everywhere(tmp_path):
    fails(tmp_path, "w.csv", "prompt,category\na,b\n", r"row 1 \(header\)", "'task'", "prompt, category",
          category_field="task")


# ---- sampling ----------------------------------------------------------------------------------

def _many(tmp_path):
    rows = [{"prompt": f"{cat} prompt {i}", "category": cat}
            for cat, n in (("big", 60), ("mid", 25), ("small", 3), ("tiny", 1)) for i in range(n)]
    return write(tmp_path, "many.jsonl", "\n".join(json.dumps(r) for r in rows))


def test_stratified_sample_deterministic_and_keeps_categories(tmp_path):
    path = _many(tmp_path)
    a = load_workload(path, max_prompts=20, seed=7)
    b = load_workload(path, max_prompts=20, seed=7)
    c = load_workload(path, max_prompts=20, seed=8)
    assert [p.id for p in a.prompts] == [p.id for p in b.prompts] != [p.id for p in c.prompts]
    counts = a.categories()
    assert len(a.prompts) == 20 and set(counts) == {"big", "mid", "small", "tiny"}
    assert counts["big"] > counts["mid"] > counts["small"] >= counts["tiny"] == 1
    assert [p.source_line for p in a.prompts] == sorted(p.source_line for p in a.prompts)
    assert a.sample == {"from": 89, "kept": 20, "seed": 7, "per_category": {
        "big": [counts["big"], 60], "mid": [counts["mid"], 25], "small": [counts["small"], 3], "tiny": [1, 1]}}
    assert any(w.startswith("sampled 20 of 89 prompts") and "seed 7" in w for w in a.warnings)


def test_sample_smaller_than_categories_and_bad_values(tmp_path):
    path = _many(tmp_path)
    w = load_workload(path, max_prompts=2, seed=0)
    assert len(w.prompts) == 2 and len(w.categories()) == 2
    assert "some are missing" in w.warnings[-2]
    assert len(load_workload(path, max_prompts=500).prompts) == 89 and load_workload(path, max_prompts=500).sample is None
    with pytest.raises(SpecdecError, match="at least 1"):
        load_workload(path, max_prompts=0)


# ---- encoding ----------------------------------------------------------------------------------

def test_encode_prompt_applies_chat_template(tokenizer):
    p = Prompt("1", "c", "hi", None, "Be kind.", 3)
    ids, warning = encode_prompt(p, tokenizer, 1000)
    assert warning is None
    assert tokenizer.decode(ids) == ("<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                                     "<|im_start|>assistant\n")
    chat = Prompt("2", "c", "Q2", ({"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                                   {"role": "user", "content": "Q2"}), None, 4)
    assert "A1<|im_end|>" in tokenizer.decode(encode_prompt(chat, tokenizer, 1000)[0])


def test_encode_prompt_truncates_from_the_left(tokenizer):
    p = Prompt("x7", "c", "abcdefghij" * 10, None, None, 12)
    full, _ = encode_prompt(p, tokenizer, 10_000)
    ids, warning = encode_prompt(p, tokenizer, 20)
    assert ids == full[-20:] and len(full) > 20
    assert warning == f"prompt x7 (line 12): {len(full)} tokens is more than the 20 left after max_new_tokens: " \
                      "kept the last 20"
    with pytest.raises(SpecdecError):
        encode_prompt(p, tokenizer, 0)


def test_encode_without_chat_template_and_with_a_template_that_refuses_system():
    class Tok:
        chat_template = None

        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [ord(ch) for ch in text]}

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            if any(m["role"] == "system" for m in messages):
                raise ValueError("System role not supported")
            return "|".join(m["content"] for m in messages) + "|>"

    p = Prompt("1", "c", "hi", None, "sys", 1)
    assert encode_prompt(p, Tok(), 100) == ([ord(c) for c in "sys\n\nhi"], None)
    tok = Tok()
    tok.chat_template = "something"
    ids, warning = encode_prompt(p, tok, 100)
    assert "".join(map(chr, ids)) == "sys\n\nhi|>" and "rejects a system turn" in warning


def test_token_report(tmp_path, tokenizer):
    w = load_workload(write(tmp_path, "w.txt", "short\n" + "long " * 40 + "\n"))
    report = token_report(w, tokenizer, 100)
    assert report["truncated"] == 1 and len(report["warnings"]) == 1 and "line 2" in report["warnings"][0]
    assert report["tokens"]["max"] > 100


# ---- real files ----------------------------------------------------------------------------------

SPEC_BENCH_FORMAT = Path(__file__).parent / "fixtures" / "spec_bench_format.jsonl"


def test_spec_bench_format_loads_without_the_shared_data():
    """Runs everywhere (no ../shared needed): a project-written file in Spec-Bench's exact format —
    {"question_id", "category", "turns"} — with its 13 categories, two prompts each. The real question set
    may not be copied into the repository (../shared/data/NOTICE.md), so it is tested below when present."""
    w = load_workload(SPEC_BENCH_FORMAT)
    assert len(w.prompts) == 26 and w.skipped == []
    assert set(w.categories().values()) == {2} and len(w.categories()) == 13
    assert w.prompts[0].id == "81" and w.prompts[0].category == "translation"
    writing = next(p for p in w.prompts if p.category == "writing")
    assert writing.text == "Project-written writing question 1: answer briefly."  # first turn only
    assert sum("only the first turn" in x for x in w.warnings) >= 1


def test_spec_bench_loads_with_its_categories(spec_bench_path):
    w = load_workload(spec_bench_path)
    assert len(w.prompts) == 480 and w.skipped == []
    counts = w.categories()
    assert len(counts) == 13
    assert all(counts[c] == 80 for c in ("translation", "summarization", "qa", "math_reasoning", "rag"))
    assert all(counts[c] == 10 for c in ("writing", "roleplay", "reasoning", "math", "coding", "extraction",
                                         "stem", "humanities"))
    assert w.prompts[0].id == "81"


# Every prompt file (the recorded run in example_run/ is not one); views.sample_workload_files is what
# the Workload page lists, so the test covers exactly what users can pick.
SAMPLE_FILES = views.sample_workload_files(SAMPLES)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_sample_workload_loads_cleanly(path):
    w = load_workload(path, strict=True)
    assert w.skipped == [] and not any("duplicate" in x for x in w.warnings)
    assert config.DEFAULT_CATEGORY not in w.categories()
    if path.stem == "mixed":
        assert len(w.prompts) >= 24 and len(w.categories()) >= 8
        assert any(p.messages and p.system for p in w.prompts)
    else:
        assert min(w.categories().values()) >= 8 and w.warnings == []


def test_samples_cover_eight_categories_in_several_formats():
    assert SAMPLE_FILES, "sample_workloads/ is missing"
    categories = set()
    for path in SAMPLE_FILES:
        w = load_workload(path)
        categories |= set(w.categories())
    assert len(categories) >= 8
    assert {load_workload(p).format for p in SAMPLE_FILES} >= {"jsonl", "csv", "text"}
    readme = (SAMPLES / "README.md").read_text()
    assert all(p.name in readme for p in SAMPLE_FILES)


# ---- CLI -----------------------------------------------------------------------------------------

def test_cli_check_workload_ok(tmp_path, capsys):
    path = write(tmp_path, "w.csv", "prompt,category\na,x\nb,y\nc,y\n")
    assert main(["check-workload", str(path), "--max-prompts", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 prompts in 2 categories" in out and "sampled 2 of 3" in out


def test_cli_check_workload_error(tmp_path, capsys):
    path = write(tmp_path, "w.jsonl", '{"prompt": "a"}\n{oops\n')
    assert main(["check-workload", str(path), "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: w.jsonl: line 2: malformed JSON")


def test_cli_check_workload_with_tokenizer(tmp_path, capsys, tiny_model_dirs):
    target_dir, _ = tiny_model_dirs
    path = write(tmp_path, "w.txt", "short\n" + "x" * 1200 + "\n")
    assert main(["check-workload", str(path), "--tokenizer", str(target_dir), "--max-new-tokens", "24"]) == 0
    out = capsys.readouterr().out
    assert "1 over the 1000-token budget" in out and "kept the last 1000" in out
