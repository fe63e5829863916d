# Alignment of a chat split between student and teacher tokens, once per pipeline and split:
# byte-aligned chunks (cross, Pipeline A) or position pairs across chat templates (shared, Pipeline B).
# Splits: distill_unseen (the distillation data) and signal_probe (the teacher-signal stage's rows),
# from the world or, at paper scale, the paper's mixture (rule make_data).


rule align_pipeline:
    input:
        rows=lambda w: chat_rows(w.split),
        tokenizers=tokenizer_outputs(),
    output:
        results("align", "{pipeline}", "{split}.safetensors"),
    params:
        cfg=lambda w: stage_json(config, "align", pipeline=w.pipeline),
        tokenizers=lambda w, input: parent_dir(input.tokenizers[0], up=2),
    log:
        logs("align", "{pipeline}", "{split}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide align --config-json {params.cfg:q} --pipeline {wildcards.pipeline}"
        " --rows {input.rows} --tokenizers {params.tokenizers} --out {output} > {log} 2>&1"
