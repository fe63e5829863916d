# The two diffusion teachers, trained once with the masked-diffusion objective (or, at paper scale,
# the released checkpoints loaded and checked). Versioned with DVC: `dvc pull` skips this stage.


TRAINED_TEACHERS = [k for k in TEACHERS if not pretrained("teachers", k)]
RELEASED_TEACHERS = [k for k in TEACHERS if pretrained("teachers", k)]


rule train_teacher:
    wildcard_constraints:
        kind=one_of(TRAINED_TEACHERS),
    input:
        world=world_outputs(),
        tokenizer=lambda w: results("tokenizers", TEACHER_TOKENIZER[w.kind], "tokenizer.json"),
    output:
        teacher_outputs("{kind}"),
    params:
        launcher=launch(lambda w: config["teachers"][w.kind]["train"]),
        cfg=lambda w: stage_json(config, "train-teacher", kind=w.kind),
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
        "{params.launcher} -m tide train-teacher --kind {wildcards.kind} --config-json {params.cfg:q}"
        " --threads {threads} --world {params.world} --tokenizer {params.tokenizer}"
        " --work {params.work} --out {params.out} > {log} 2>&1"


rule prepare_teacher:  # paper scale: the released teacher, fetched, verified and saved
    wildcard_constraints:
        kind=one_of(RELEASED_TEACHERS),
    input:
        tokenizer=lambda w: results("tokenizers", TEACHER_TOKENIZER[w.kind], "tokenizer.json"),
        rows=chat_rows(PROBE_SPLIT),
    output:
        teacher_outputs("{kind}"),
    params:
        cfg=lambda w: stage_json(config, "prepare", role=TEACHER_TOKENIZER[w.kind]),
        role=lambda w: TEACHER_TOKENIZER[w.kind],
        tokenizer=lambda w, input: parent_dir(input.tokenizer),
        out=lambda w, output: parent_dir(output[0]),
    threads: config["threads"]
    log:
        logs("teachers", "{kind}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide prepare --config-json {params.cfg:q} --threads {threads} --role {params.role}"
        " --tokenizer {params.tokenizer} --rows {input.rows} --out {params.out} > {log} 2>&1"


rule teachers:
    input:
        [teacher_outputs(kind) for kind in TEACHERS],
