"""Stages that only read keys or logits hold no KV cache (issue 29): the forward that collects keys runs with
use_cache=False. A cache would be 2·L·tokens·d_kv·bytes (kis.plan.kv_cache_bytes; 12.5 GiB for one 16,384-token
batch of Llama-2-13B), which the covariance plan does not count."""
import pytest
import torch
from transformers import cache_utils

import tiny
from kis import covariance, keys, plan, probe

TEXTS = ["The capital of France is Paris.", "Water boils at one hundred degrees.", "A short one."]


@pytest.fixture
def cache_writes(monkeypatch):
    """Every key/value tensor a forward stores in a transformers cache, as (layer, bytes)."""
    stored = []
    original = cache_utils.DynamicCache.update

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        stored.append((layer_idx, key_states.nbytes + value_states.nbytes))
        return original(self, key_states, value_states, layer_idx, *args, **kwargs)

    monkeypatch.setattr(cache_utils.DynamicCache, "update", update)
    return stored


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_a_forward_with_the_default_keeps_exactly_the_planned_cache(family, cache_writes):
    """The control: transformers' default (use_cache on) stores 2·L·tokens·d_kv·bytes, kis.plan.kv_cache_bytes."""
    model, tok = tiny.model(family)
    ids, mask = probe.pad(covariance.tokenize(tok, TEXTS, 16), tok.pad_token_id)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    shape = covariance.model_shape(model)
    assert sorted({layer for layer, _ in cache_writes}) == list(range(shape.n_layers))
    assert sum(b for _, b in cache_writes) == plan.kv_cache_bytes(shape, ids.numel(), "float32")


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_key_collection_and_scoring_allocate_no_cache(family, cache_writes):
    model, tok = tiny.model(family)
    rows = covariance.tokenize(tok, TEXTS, 16)
    ids, mask = probe.pad(rows, tok.pad_token_id)
    got = {}
    covariance.forward_keys(model, ids, mask, got.__setitem__)  # the covariance pass
    assert len(got) == model.config.num_hidden_layers
    keys.at_index(model, tok, rows, [len(r) - 1 for r in rows], batch_size=2)  # the analysis keys
    probe.logits(model, rows, tok.pad_token_id)  # scoring (known facts, held-out P(true))
    probe.logits(model, rows, tok.pad_token_id, positions=[[len(r) - 1] for r in rows])
    assert cache_writes == []
