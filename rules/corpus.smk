# The seeded text sample behind C (kis.corpus): the `corpus:` settings → results/corpus/texts.parquet.


rule corpus:
    input:
        # a local corpus file is an input: editing it reruns the sample (python_docs / hf have none)
        lambda wc: [config["corpus"]["path"]] if config["corpus"]["source"] == "local" else [],
    output:
        texts=f"{RESULTS}/corpus/texts.parquet",
    params:
        corpus=canonical(config["corpus"]),
    log:
        f"{LOGS}/corpus/corpus.log",
    resources:
        # named here, not left to --default-resources (a command line that sets those drops the profile's): 1,387 MiB
        # peak measured on 100k Wikipedia-length texts; the streamed hf download takes most of the time
        mem_mb=max(MIN_MEM_MB, 2048 + corpus_texts() // 50),  # + 20 KB a text
        runtime=180,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/corpus.py"
