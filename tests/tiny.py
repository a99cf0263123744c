"""Tiny random models of each registered family, built from transformers configs (no download).

`python tests/tiny.py .test` writes the inputs of the committed tiny end-to-end config (.test/config/config.yaml):
models/gpt2, models/llama and data/corpus.jsonl. `python tests/tiny.py OUT_DIR FAMILY` saves one model (model +
tokenizer) as a local directory.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import torch

FAMILIES = ("gpt2", "gptj", "gpt_neox", "llama", "qwen2")
GEMMA = ("gemma2", "gemma3")  # GeGLU, scaled embeddings, norms around the FFN (tests/test_models.py covers them)


@functools.lru_cache(maxsize=None)
def tokenizer(kind: str = "bpe"):
    """A small tokenizer trained on CPython's pydoc topics: byte-level BPE (GPT-2 style) or a
    SentencePiece-style Metaspace BPE with a BOS token (Llama style)."""
    from pydoc_data.topics import topics
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    text = list(topics.values())
    if kind == "bpe":
        tk = Tokenizer(models.BPE())
        tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tk.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tk.train_from_iterator(text, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                       pad_token="<|endoftext|>")
    tk = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tk.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"])
    tk.train_from_iterator(text, trainer)
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", tk.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="</s>", add_bos_token=True)


class Stop(Exception):
    """Raised by a `stop_after` progress callback: a job killed in the middle of its run."""


def stop_after(texts: int):
    """A covariance progress callback that raises Stop once `texts` texts are done (after that batch's checkpoint)."""
    def progress(done, **_):
        if done >= texts:
            raise Stop
    return progress


def config(family: str, vocab: int, n_layer: int = 3, d: int = 32, f: int = 64):
    from transformers import (Gemma2Config, Gemma3TextConfig, GPT2Config, GPTJConfig, GPTNeoXConfig, LlamaConfig,
                              Qwen2Config)

    if family == "gpt2":
        return GPT2Config(vocab_size=vocab, n_positions=128, n_embd=d, n_layer=n_layer, n_head=4, n_inner=f)
    if family == "gptj":
        return GPTJConfig(vocab_size=vocab, n_positions=128, n_embd=d, n_layer=n_layer, n_head=4, n_inner=f,
                          rotary_dim=4)
    if family == "gpt_neox":
        return GPTNeoXConfig(vocab_size=vocab, max_position_embeddings=128, hidden_size=d, num_hidden_layers=n_layer,
                             num_attention_heads=4, intermediate_size=f)
    if family == "llama":
        return LlamaConfig(vocab_size=vocab, max_position_embeddings=128, hidden_size=d, num_hidden_layers=n_layer,
                           num_attention_heads=4, num_key_value_heads=2, intermediate_size=f)
    if family == "qwen2":  # Llama's block with q/k/v biases, byte-level BPE
        return Qwen2Config(vocab_size=vocab, max_position_embeddings=128, hidden_size=d, num_hidden_layers=n_layer,
                           num_attention_heads=4, num_key_value_heads=2, intermediate_size=f)
    if family in GEMMA:  # a sliding window shorter than the test texts, as the real models have
        cls = Gemma3TextConfig if family == "gemma3" else Gemma2Config
        return cls(vocab_size=vocab, max_position_embeddings=128, hidden_size=d, num_hidden_layers=n_layer,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=f, sliding_window=8)
    raise ValueError(family)


def model(family: str = "gpt2", seed: int = 0, **kw):
    """(model, tokenizer): random weights, eval mode, fp32. Llama and Gemma get the SentencePiece-style tokenizer."""
    from transformers import AutoModelForCausalLM

    tok = tokenizer("spm" if family in ("llama",) + GEMMA else "bpe")
    torch.manual_seed(seed)
    cfg = config(family, len(tok), **kw)
    cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id
    m = AutoModelForCausalLM.from_config(cfg).eval().requires_grad_(False)
    return m, tok


def save(out_dir: str | Path, family: str = "gpt2", seed: int = 0) -> Path:
    out_dir = Path(out_dir)
    m, tok = model(family, seed)
    m.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


# where each family keeps its FFN output projection — written out here, independently of kis.models
FFN_OUT = {"gpt2": "transformer.h.{}.mlp.c_proj", "gptj": "transformer.h.{}.mlp.fc_out",
           "gpt_neox": "gpt_neox.layers.{}.mlp.dense_4h_to_h", "llama": "model.layers.{}.mlp.down_proj",
           "qwen2": "model.layers.{}.mlp.down_proj"}


def covariance_reference(model, tok, texts, family, max_length):
    """float64 Σ k kᵀ / T, one text at a time (no padding at all), hooks written without kis."""
    n_layers = model.config.num_hidden_layers if hasattr(model.config, "num_hidden_layers") else model.config.n_layer
    mods = dict(model.named_modules())
    sums, count = None, 0
    for text in texts:
        ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
        got = {}
        hooks = [mods[FFN_OUT[family].format(i)].register_forward_pre_hook(
            lambda m, a, i=i: got.__setitem__(i, a[0][0].double())) for i in range(n_layers)]
        with torch.no_grad():
            model(input_ids=ids)
        for h in hooks:
            h.remove()
        if sums is None:
            sums = [torch.zeros(got[0].shape[1], got[0].shape[1], dtype=torch.float64) for _ in range(n_layers)]
        for i in range(n_layers):
            sums[i] += got[i].T @ got[i]
        count += ids.shape[1]
    return [s / count for s in sums], count


def corpus_file(path: str | Path, n: int = 24) -> Path:
    """A small JSONL corpus from CPython's pydoc topics (exists everywhere)."""
    from pydoc_data.topics import topics

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for k, v in sorted(topics.items())[:n]:
            fh.write(json.dumps({"id": k, "text": v[:1500]}) + "\n")
    return path


def write_test_inputs(test_dir: str | Path, families=("gpt2", "llama")) -> Path:
    """The generated inputs of .test/config/config.yaml under test_dir: models/<family>, data/corpus.jsonl."""
    test_dir = Path(test_dir)
    for family in families:
        if not (test_dir / "models" / family / "config.json").exists():
            save(test_dir / "models" / family, family)
    corpus_file(test_dir / "data" / "corpus.jsonl")
    return test_dir


if __name__ == "__main__":
    print(save(sys.argv[1], sys.argv[2]) if len(sys.argv) > 2 else write_test_inputs(sys.argv[1]))
