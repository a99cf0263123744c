"""Context templates sampled from the model, as ROME's and MEMIT's code make them: the key k̄ = mean over "{}" and
"<text>. {}", <text> a short top-k sample of the unedited model.

ROME (kmeng01/rome rome/rome_main.py:154-177, with hparams/ROME/*.json context_template_length_params [[5, 10],
[10, 10]]): from the start-of-text token ("<|endoftext|>", GPT-2's BOS), 10 samples of 5 tokens and 10 of 10 tokens in
all → 21 templates. MEMIT (kmeng01/memit memit/memit_main.py:290-309): one sample of 10 tokens from each of "The",
"Therefore", "Because", "I", "You", braces replaced by spaces → "{}" and 5 templates, which MEMIT averages as two groups
(kis.editing.template_groups). Sampling as their util/generate.py generate_fast:80-157 — top-5, renormalised, each
row up to max_out_len tokens with the prompt; decoded, NFKD-normalised, "\\n\\n" → " ", special tokens dropped. Here
the draws come from a torch.Generator seeded by `seed` (theirs: the global RNG), braces become spaces for ROME too
(a generated brace would break the template), and the prompts are tokenised with the tokenizer's special tokens
(kis.probe: a BOS where the model has one; the ROME recipe starts from the BOS token itself, or EOS without one)."""
from __future__ import annotations

import unicodedata

import torch

from . import probe

from .hparams import MEMIT_FAMILY, MEMIT_RECIPE, ROME_RECIPE, recipe  # noqa: F401  (read without torch)


@torch.no_grad()
def sample(model, ids: list[int], n: int, max_len: int, top_k: int, gen: torch.Generator) -> list[list[int]]:
    """n top-k samples continuing `ids` to max_len tokens in all (generate_fast: top_k, renormalised, multinomial)."""
    dev = probe.device_of(model)
    rows = torch.tensor([list(ids)] * n, device=dev)
    while rows.shape[1] < max_len:
        logits = model(input_ids=rows).logits[:, -1].double().cpu()
        p = torch.softmax(logits, -1)
        top = torch.topk(p, top_k, dim=1)
        pick = torch.multinomial(top.values / top.values.sum(1, keepdim=True), 1, generator=gen)
        rows = torch.cat([rows, top.indices.gather(1, pick).to(dev)], 1)
    return rows.tolist()


def clean(text: str) -> str:
    """generate_fast's decoding (NFKD, "\\n\\n" → " "), braces → spaces (memit_main.py:296)."""
    return unicodedata.normalize("NFKD", text).replace("\n\n", " ").replace("{", " ").replace("}", " ")


def generate(model, tok, method: str, seed: int, top_k: int = 5) -> list[str]:
    """["{}", "<sample>. {}", ...]: the context templates of `method`'s recipe, sampled from `model` with `seed`."""
    prompts, lengths = recipe(method)
    if prompts is None:
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if start is None:
            raise ValueError("the tokenizer has neither a BOS nor an EOS token to start ROME's context templates from")
        seeds = [[int(start)]]
    else:
        seeds = [probe.prompt_ids(tok, p) for p in prompts]
    gen = torch.Generator().manual_seed(int(seed))
    out = ["{}"]
    for max_len, n in lengths:
        for ids in seeds:
            out += [clean(tok.decode(row, skip_special_tokens=True)) + ". {}"
                    for row in sample(model, ids, n, max_len, top_k, gen)]
    return out
