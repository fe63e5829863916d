# Alignment of the distill split between student and teacher tokens, once per pipeline:
# byte-aligned chunks (cross, Pipeline A) or position pairs across chat templates (shared, Pipeline B).


rule align_pipeline:
    input:
        world=world_outputs(),
        tokenizers=tokenizer_outputs(),
    output:
        results("align", "{pipeline}.safetensors"),
    params:
        cfg=lambda w: cfg_json("distill.max_student_len", "distill.max_teacher_len"),
        world=lambda w, input: parent_dir(input.world[0]),
        tokenizers=lambda w, input: parent_dir(input.tokenizers[0], up=2),
    log:
        logs("align", "{pipeline}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide align --config-json {params.cfg:q} --pipeline {wildcards.pipeline}"
        " --world {params.world} --tokenizers {params.tokenizers} --out {output} > {log} 2>&1"
