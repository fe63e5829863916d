# Student baselines: AR pretraining (AR row) -> a2d conversion -> BD3LM SFT (BD3LM row).


rule train_ar:
    input:
        world=world_outputs(),
        tokenizer=results("tokenizers", "student", "tokenizer.json"),
    output:
        model_outputs(results("students", "ar")),
    params:
        cfg=lambda w: cfg_json("students.ar", "students.model"),
        world=lambda w, input: parent_dir(input.world[0]),
        tokenizer=lambda w, input: parent_dir(input.tokenizer),
        work=work("students", "ar"),
        out=lambda w, output: parent_dir(output[0]),
    threads: config["threads"]
    log:
        logs("students", "ar.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide train-ar --config-json {params.cfg:q} --threads {threads} --world {params.world}"
        " --tokenizer {params.tokenizer} --work {params.work} --out {params.out} > {log} 2>&1"


rule convert_a2d:
    input:
        ar=model_outputs(results("students", "ar")),
    output:
        model_outputs(results("students", "a2d")),
    params:
        cfg=lambda w: cfg_json("students.right_shift_logits"),
        ar=lambda w, input: parent_dir(input.ar[0]),
        tokenizer=results("tokenizers", "student"),
        out=lambda w, output: parent_dir(output[0]),
    log:
        logs("students", "a2d.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide a2d --config-json {params.cfg:q} --ar {params.ar} --tokenizer {params.tokenizer}"
        " --out {params.out} > {log} 2>&1"


rule sft_bd3lm:
    input:
        init=model_outputs(results("students", "a2d")),
        world=world_outputs(),
    output:
        model_outputs(results("students", "bd3lm")),
    params:
        cfg=lambda w: cfg_json("students.sft", "students.block_size"),
        init=lambda w, input: parent_dir(input.init[0]),
        world=lambda w, input: parent_dir(input.world[0]),
        tokenizer=results("tokenizers", "student"),
        work=work("students", "bd3lm"),
        out=lambda w, output: parent_dir(output[0]),
    threads: config["threads"]
    log:
        logs("students", "bd3lm.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide sft-bd3lm --config-json {params.cfg:q} --threads {threads} --init {params.init}"
        " --world {params.world} --tokenizer {params.tokenizer} --work {params.work}"
        " --out {params.out} > {log} 2>&1"


rule students:
    input:
        student_outputs(),
