# Paper scale: the distillation data, the paper's mixture of public chat datasets (data.mixture) read
# through `datasets`, written as chat rows: distill.jsonl (every part's training rows) and probe.jsonl
# (held-out rows for the teacher-signal stage and the checkpoints' likelihood check).


rule make_data:
    output:
        [results("data", f) for f in MIXTURE_FILES.values()],
        record=results("data", "provenance.json"),
    params:
        cfg=lambda w: stage_json(config, "data"),
        out=lambda w, output: parent_dir(output.record),
    log:
        logs("data.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide data --config-json {params.cfg:q} --out {params.out} > {log} 2>&1"
