# Student baselines: AR pretraining (AR row) -> a2d conversion -> BD3LM SFT (BD3LM row).


rule train_ar:
    input:
        world_outputs(),
        tokenizer=results("tokenizers", "student", "tokenizer.json"),
    output:
        model_outputs(results("students", "ar")),
    params:
        cfg=lambda w: cfg_json("students.ar", "students.model"),
        world=results("world"),
        tokenizer=results("tokenizers", "student"),
        work=work("students", "ar"),
        out=results("students", "ar"),
    threads: config["threads"]
    log:
        logs("students", "ar.log"),
    shell:
        "{TIDE} train-ar --config-json {params.cfg:q} --threads {threads} --world {params.world}"
        " --tokenizer {params.tokenizer} --work {params.work} --out {params.out} > {log} 2>&1"


rule convert_a2d:
    input:
        model_outputs(results("students", "ar")),
    output:
        model_outputs(results("students", "a2d")),
    params:
        cfg=lambda w: cfg_json("students.right_shift_logits"),
        ar=results("students", "ar"),
        tokenizer=results("tokenizers", "student"),
        out=results("students", "a2d"),
    log:
        logs("students", "a2d.log"),
    shell:
        "{TIDE} a2d --config-json {params.cfg:q} --ar {params.ar} --tokenizer {params.tokenizer}"
        " --out {params.out} > {log} 2>&1"


rule sft_bd3lm:
    input:
        model_outputs(results("students", "a2d")),
        world_outputs(),
    output:
        model_outputs(results("students", "bd3lm")),
    params:
        cfg=lambda w: cfg_json("students.sft", "students.block_size"),
        init=results("students", "a2d"),
        world=results("world"),
        tokenizer=results("tokenizers", "student"),
        work=work("students", "bd3lm"),
        out=results("students", "bd3lm"),
    threads: config["threads"]
    log:
        logs("students", "bd3lm.log"),
    shell:
        "{TIDE} sft-bd3lm --config-json {params.cfg:q} --threads {threads} --init {params.init}"
        " --world {params.world} --tokenizer {params.tokenizer} --work {params.work}"
        " --out {params.out} > {log} 2>&1"


rule students:
    input:
        student_outputs(),
