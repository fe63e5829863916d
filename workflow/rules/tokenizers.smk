# Three tokenizers trained on the world corpus: student, teacher_b (same vocab), teacher_a (other vocab).


rule train_tokenizers:
    input:
        world_outputs(),
    output:
        tokenizer_outputs(),
    params:
        cfg=lambda w: cfg_json("tokenizers"),
        corpus=results("world", "corpus"),
        out=results("tokenizers"),
    log:
        logs("tokenizers.log"),
    shell:
        "{TIDE} tokenizers --config-json {params.cfg:q} --corpus {params.corpus}"
        " --out {params.out} > {log} 2>&1"


rule tokenizers:
    input:
        tokenizer_outputs(),
