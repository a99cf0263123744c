"""Target tokenisation (kis.probe.target_ids): the target's ids are the suffix of tokenize(prompt + " " + target)
after the prompt's ids, on a byte-level BPE tokenizer and on a SentencePiece tokenizer with a dummy prefix (Llama-2's
legacy setting), where " Paris" tokenised alone starts with a spurious "▁" piece."""
import io
import logging

import pytest

import tiny
from kis import probe

spm = pytest.importorskip("sentencepiece", reason="the SentencePiece test needs the sentencepiece package")

TEXT = ["The capital of France is Paris.", "Paris is a city in France.", "The mother tongue of Danielle is French.",
        "The capital of Norway is Oslo.", "He was born in Paris, the capital."]


@pytest.fixture(scope="module")
def sp_tokenizer(tmp_path_factory):
    """(fast tokenizer, SentencePiece processor): a tiny BPE SentencePiece model trained on the fly with Llama's
    legacy settings (dummy prefix, byte fallback, no whitespace normalisation), loaded through transformers'
    LlamaTokenizer(legacy=True), with Llama-2's tokenizer.json pipeline (normalizer Prepend("▁") + Replace(" ", "▁"),
    no pre-tokenizer), which transformers 5 no longer builds from `legacy` itself."""
    from tokenizers import normalizers
    from transformers import LlamaTokenizer

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TEXT * 40), model_writer=buf, vocab_size=400, hard_vocab_limit=False, model_type="bpe",
        add_dummy_prefix=True, byte_fallback=True, split_digits=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0, minloglevel=2)
    d = tmp_path_factory.mktemp("sp")
    (d / "tokenizer.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    tok = LlamaTokenizer.from_pretrained(str(d), legacy=True, add_bos_token=True)
    bt = tok.backend_tokenizer
    bt.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    bt.pre_tokenizer = None
    return tok, sp


def pieces(tok, ids):
    return tok.convert_ids_to_tokens(ids)


def test_sentencepiece_dummy_prefix_gives_a_spurious_piece_alone(sp_tokenizer):
    tok, sp = sp_tokenizer
    alone = tok(" Paris", add_special_tokens=False)["input_ids"]
    assert alone == sp.encode(" Paris")                      # the fast pipeline is SentencePiece's own
    assert pieces(tok, alone) == ["▁", "▁Paris"]             # the spurious "▁" of the old tokenisation
    prompt = "The capital of France is"
    assert pieces(tok, probe.target_ids(tok, prompt, "Paris")) == ["▁Paris"]
    # the suffix is what the model reads after the prompt: the tokenisation of the joined text
    joint = tok(prompt + " Paris")["input_ids"]
    assert joint[0] == tok.bos_token_id and joint[1:] == sp.encode(prompt + " Paris")
    assert joint[-1:] == probe.target_ids(tok, prompt, "Paris")
    # and the known filter's ids (probe.prompt_ids + probe.target_ids) are the joint tokenisation
    assert probe.prompt_ids(tok, prompt) + probe.target_ids(tok, prompt, "Paris") == joint


def test_byte_level_bpe_suffix_equals_the_target_alone():
    tok = tiny.tokenizer("bpe")
    for prompt, target in [("The value of the module is", "the function"), ("Consider", "class object")]:
        got = probe.target_ids(tok, prompt, target)
        assert got == tok(" " + target, add_special_tokens=False)["input_ids"]
        assert tok(prompt)["input_ids"] + got == tok(prompt + " " + target)["input_ids"]


class MergingTok:
    """Characters as tokens, except that "s " is one token: joining "This is" and " Paris" merges across the
    boundary. " x" alone starts with a whitespace-only token (like a dummy-prefix piece)."""
    def __call__(self, text, add_special_tokens=True):
        ids, i = [], 0
        while i < len(text):
            if text[i:i + 2] == "s ":
                ids.append(1000)
                i += 2
            else:
                ids.append(ord(text[i]))
                i += 1
        return {"input_ids": ids}

    def decode(self, ids):
        return "".join("s " if i == 1000 else chr(i) for i in ids)


def test_merge_across_the_boundary_falls_back_to_the_target_alone_and_logs(caplog):
    tok = MergingTok()
    with caplog.at_level(logging.WARNING, logger="kis.probe"):
        got = probe.target_ids(tok, "This is", "Paris")
    assert got == [ord(c) for c in "Paris"]                   # " Paris" alone, less its whitespace-only token
    assert "merges across the prompt boundary" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kis.probe"):
        assert probe.target_ids(tok, "This one", "Paris") == [ord(c) for c in " Paris"]  # no merge: the suffix
    assert not caplog.text
