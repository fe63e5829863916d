# Three tokenizers trained on the world corpus: student, teacher_b (same vocab), teacher_a (other vocab);
# at paper scale the released ones (tokenizers.pretrained), the student's built offline.


rule train_tokenizers:
    input:
        world=world_outputs(),
    output:
        tokenizer_outputs(),
    params:
        cfg=lambda w: stage_json(config, "tokenizers"),
        corpus=lambda w, input: f"--corpus {parent_dir(input.world[1])}" if input.world else "",
        out=lambda w, output: parent_dir(output[0], up=2),
    log:
        logs("tokenizers.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide tokenizers --config-json {params.cfg:q} {params.corpus}"
        " --out {params.out} > {log} 2>&1"


rule tokenizers:
    input:
        tokenizer_outputs(),
