# The two diffusion teachers, trained once with the masked-diffusion objective (or, at paper scale,
# the released checkpoints loaded and checked). Versioned with DVC: `dvc pull` skips this stage.


rule train_teacher:
    input:
        world_outputs(),
        tokenizer=lambda w: results("tokenizers", TEACHER_TOKENIZER[w.kind], "tokenizer.json"),
    output:
        teacher_outputs("{kind}"),
    params:
        cfg=lambda w: cfg_json(f"teachers.{w.kind}", "students.block_size"),
        world=results("world"),
        tokenizer=lambda w: results("tokenizers", TEACHER_TOKENIZER[w.kind]),
        work=lambda w: work("teachers", w.kind),
        out=lambda w: results("teachers", w.kind),
    threads: config["threads"]
    log:
        logs("teachers", "{kind}.log"),
    shell:
        "{TIDE} train-teacher --kind {wildcards.kind} --config-json {params.cfg:q}"
        " --threads {threads} --world {params.world} --tokenizer {params.tokenizer}"
        " --work {params.work} --out {params.out} > {log} 2>&1"


rule teachers:
    input:
        [teacher_outputs(kind) for kind in TEACHER_TOKENIZER],
