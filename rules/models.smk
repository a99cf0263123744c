# A model becomes loadable offline: GGUF → safetensors directory; hub id / local dir → recorded in a manifest.


rule prepare_model:
    output:
        manifest=f"{RESULTS}/models/{{model}}/manifest.json",
    params:
        spec=lambda wc: canonical(model_result_spec(wc)),  # the entry minus label / cluster keys: editing those reruns nothing
    log:
        f"{LOGS}/prepare_model/{{model}}.log",
    benchmark:
        f"{BENCH}/prepare_model/{{model}}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=lambda wc: model_mem_mb(wc.model),  # covers loading a .bin checkpoint (models.<m>.checkpoint_gb)
        runtime=lambda wc: download_runtime(wc.model),
    script:
        "../workflow/scripts/prepare_model.py"
