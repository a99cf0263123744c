"""What the editing tests share: random SPD matrices, tiny facts and models that can be edited, hyperparameters."""
import numpy as np
import torch

import tiny
from kis import covariance, editing, models


def spd(f, rng, cond=1e3):
    Q, _ = np.linalg.qr(rng.standard_normal((f, f)))
    ev = np.geomspace(1.0, 1.0 / cond, f)
    return (Q * ev) @ Q.T


def t(x):
    return torch.tensor(x, dtype=torch.float64)


# Subjects end their prompts (the edited position is the last one, so a 3-layer random model can be edited at all)
# and targets are single tokens of the tiny tokenizer.
WORDS = ["the", "of", "in", "is", "and", "to", "for", "with", "object", "class"]
SUBJECTS = ["the river", "the kingdom", "the student", "the module", "the person", "the worker", "the function",
            "the value", "the method", "the loop", "the table", "the string"]
PROMPTS = ["Consider {}", "Think about {}", "Look at {}"]


def tiny_facts(n=12):
    out = []
    for i in range(n):
        s = SUBJECTS[i]
        out.append({"case_id": 100 + i, "prompt": PROMPTS[i % 3], "subject": s, "target_true": WORDS[i % 10],
                    "target_new": WORDS[(i + 3) % 10], "relation_id": "P0",
                    "paraphrase_prompts": [f"Note well: {s}", f"Again {s}"],
                    "neighborhood_prompts": [f"Consider {SUBJECTS[(i + 5) % n]}", f"Look at {SUBJECTS[(i + 7) % n]}"],
                    "generation_prompts": [f"{s} is"]})
    return out


HP = {"v_num_grad_steps": 20, "v_lr": 0.5, "v_weight_decay": 0.0, "clamp_norm_factor": 100.0, "kl_factor": 0.0625,
      "mom2_update_weight": 50.0, "nullspace_threshold": None, "L2": 1e-6, "var": 0.5, "space": 0.25, "warmup": 1}
TEMPLATES = ["{}", "A fact. {}"]


def peaked_tiny(family="llama"):
    """A tiny random model whose unembedding is scaled up, so one token can become likely."""
    model, tok = tiny.model(family)
    with torch.no_grad():
        if family == "llama":
            models.unembed(model).weight.mul_(20)
        else:  # GPT-2 ties the unembedding to the input embedding: scale the final norm instead
            models.final_norm(model).weight.mul_(20)
    return model, tok


def hp_for(method, covs, layers):
    hp = dict(HP)
    if method in editing.ROME_FAMILY:
        hp["layer"] = layers[-1]
    else:
        hp["layers"] = layers
    # AlphaEdit's published threshold is for Wikipedia-scale C; here: the smaller half of the spectrum
    hp["nullspace_threshold"] = float(torch.linalg.eigvalsh(covs[layers[0]]).median())
    return hp


def tiny_covs():
    """C of every layer of peaked_tiny() from 24 pydoc topics (the `covs` fixture in conftest.py)."""
    from pydoc_data.topics import topics

    model, tok = peaked_tiny()
    texts = [v[:800] for _, v in sorted(topics.items())[:24]]
    sums, n = covariance.collect(model, tok, texts, max_length=64, token_budget=1024)
    return dict(enumerate(covariance.finalize(sums, n)))
