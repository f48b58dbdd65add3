"""Tiny random models and a byte-level tokenizer, built from configs: no downloads.

Shared by conftest.py (fixtures) and scripts that need a throwaway model pair on disk.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 256 + len(SPECIALS)
EOS_ID = 256 + SPECIALS.index("<|im_end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """One token per byte plus Qwen-style chat specials, so any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {bytes_to_unicode_char(b): b for b in range(256)}
    for i, s in enumerate(SPECIALS):
        vocab[s] = 256 + i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def bytes_to_unicode_char(b: int) -> str:
    """GPT-2's printable stand-in for byte b, as the ByteLevel pre-tokenizer emits it."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in printable:
        return chr(b)
    return chr(256 + sum(1 for x in range(b) if x not in printable))


def tiny_qwen2(seed: int = 0, layers: int = 2, vocab_size: int = VOCAB_SIZE) -> Qwen2ForCausalLM:
    """A 2-layer Qwen2 with peaked next-token distributions (large init), float32, eval mode."""
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        initializer_range=0.3, eos_token_id=EOS_ID if vocab_size > EOS_ID else None,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(cfg).eval()


def tiny_llama(seed: int = 0, vocab_size: int = VOCAB_SIZE) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        initializer_range=0.3, eos_token_id=EOS_ID if vocab_size > EOS_ID else None,
    )
    return LlamaForCausalLM(cfg).eval()


def noisy_copy(model: torch.nn.Module, noise: float = 0.05, seed: int = 1) -> torch.nn.Module:
    """A draft that mostly agrees with its target: the target's weights plus Gaussian noise."""
    draft = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn(p.shape, generator=g) * noise * p.std().clamp_min(1e-3))
    return draft.eval()


def save_pair(root: Path) -> tuple[Path, Path]:
    """Write a tiny target/draft pair with the tokenizer as HF directories under root."""
    tok = tiny_tokenizer()
    target = tiny_qwen2(seed=0)
    draft = noisy_copy(target)
    paths = []
    for name, model in (("target", target), ("draft", draft)):
        path = Path(root) / name
        model.save_pretrained(path)
        tok.save_pretrained(path)
        paths.append(path)
    return paths[0], paths[1]
