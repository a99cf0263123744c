"""A few sequential edits on a model the workflow prepared, with its C: the per-edit log and the trajectory rows.

    python benchmarks/editing_prepared.py --run <workflow dir> --model gemma3-270m --method alphaedit \
        --edits 292,463,547 --heldout 0,1,2,3,4,5

Reads <run>/results/models/<model>/manifest.json and <run>/results/covariance/<model>.safetensors, the facts from
resources/facts.json and the editing settings of config/config.yaml (hyperparameters resolved for the model as the
workflow does). Prints held-out P(true) and accuracy, efficacy, the new edit's P(new), ‖ΔW‖_F and the interference
error after every edit. Used to check the MEMIT family through Gemma's post-FFN norm (benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
import yaml  # noqa: E402
from bench_common import REPO  # noqa: E402

from kis import covariance, editing, knowledge, models, trajectory  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a workflow directory with results/models and results/covariance")
    ap.add_argument("--model", required=True)
    ap.add_argument("--method", default="alphaedit", choices=editing.METHODS)
    ap.add_argument("--edits", required=True, help="case ids to edit, in order (comma separated)")
    ap.add_argument("--heldout", required=True, help="held-out case ids (comma separated)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    results = Path(args.run) / "results"
    model, tok, _ = models.load_prepared(results / "models" / args.model / "manifest.json")
    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["editing"]
    hp = editing.resolve_hparams(settings, args.method, models.n_layers(model), [args.model], models.dims(model)[1])
    layers = hp["layers"] if "layers" in hp else [hp["layer"]]
    covs, _ = covariance.load(results / "covariance" / f"{args.model}.safetensors", layers=layers)
    frame, _ = knowledge.load_facts({"source": "local", "path": str(REPO / "resources" / "facts.json"),
                                     "max_records": None})
    ids = [[int(x) for x in s.split(",") if x.strip()] for s in (args.edits, args.heldout)]
    edits, test = (trajectory.facts_by_id(frame, i) for i in ids)
    ed = editing.make_editor(args.method, model, tok, covs, hp, settings["context_templates"], settings["kl_prompt"])
    fr = trajectory.run(model, tok, ed, edits, test, eval_every=1, model_name=args.model, fluency_prompts=0,
                        max_neighborhood=2)
    cols = ["step", "heldout_p_true", "heldout_acc", "efficacy", "new_edit_p_new", "delta_w_fro",
            "interference_rel_error_median", "status"]
    print(fr[cols].to_string(index=False))


if __name__ == "__main__":
    main()
