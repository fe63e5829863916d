# The two diffusion teachers, trained once with the masked-diffusion objective (or, at paper scale,
# the released checkpoints loaded and checked). Versioned with DVC: `dvc pull` skips this stage.


rule train_teacher:
    input:
        world=world_outputs(),
        tokenizer=lambda w: results("tokenizers", TEACHER_TOKENIZER[w.kind], "tokenizer.json"),
    output:
        teacher_outputs("{kind}"),
    params:
        cfg=lambda w: cfg_json(f"teachers.{w.kind}", "students.block_size"),
        world=lambda w, input: parent_dir(input.world[0]),
        tokenizer=lambda w, input: parent_dir(input.tokenizer),
        work=lambda w: work("teachers", w.kind),
        out=lambda w: results("teachers", w.kind),
    threads: config["threads"]
    log:
        logs("teachers", "{kind}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide train-teacher --kind {wildcards.kind} --config-json {params.cfg:q}"
        " --threads {threads} --world {params.world} --tokenizer {params.tokenizer}"
        " --work {params.work} --out {params.out} > {log} 2>&1"


rule teachers:
    input:
        [teacher_outputs(kind) for kind in TEACHER_TOKENIZER],
