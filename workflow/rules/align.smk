# Alignment of the distill split between student and teacher tokens, once per pipeline:
# byte-aligned chunks (cross, Pipeline A) or position pairs across chat templates (shared, Pipeline B).


rule align_pipeline:
    input:
        world_outputs(),
        tokenizer_outputs(),
    output:
        results("align", "{pipeline}.safetensors"),
    params:
        cfg=lambda w: cfg_json("distill.max_student_len", "distill.max_teacher_len"),
        world=results("world"),
        tokenizers=results("tokenizers"),
    log:
        logs("align", "{pipeline}.log"),
    shell:
        "{TIDE} align --config-json {params.cfg:q} --pipeline {wildcards.pipeline}"
        " --world {params.world} --tokenizers {params.tokenizers} --out {output} > {log} 2>&1"
