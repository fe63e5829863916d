# Student baselines: AR pretraining (AR row) -> a2d conversion -> BD3LM SFT (BD3LM row); at paper
# scale the released AR model and BD3LM student, fetched, verified and saved (prepare_student).

from tide.checkpoints import PREPARED

# students/<name> whose config section names a released checkpoint: `prepare --role <name>`
# (tide.checkpoints.PREPARED: role -> section) fetches it instead of training it here
RELEASED_STUDENTS = [role for role, (group, key, *_) in PREPARED.items()
                     if group == "students" and pretrained(group, key)]


ruleorder: prepare_student > train_ar
ruleorder: prepare_student > sft_bd3lm



rule train_ar:
    input:
        world=world_outputs(),
        tokenizer=results("tokenizers", "student", "tokenizer.json"),
    output:
        model_outputs(results("students", "ar")),
    params:
        launcher=launch(lambda w: config["students"]["ar"]["train"]),
        cfg=lambda w: stage_json(config, "train-ar"),
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
        "{params.launcher} -m tide train-ar --config-json {params.cfg:q} --threads {threads} --world {params.world}"
        " --tokenizer {params.tokenizer} --work {params.work} --out {params.out} > {log} 2>&1"


rule convert_a2d:
    input:
        ar=model_outputs(results("students", "ar")),
    output:
        model_outputs(results("students", "a2d")),
    params:
        cfg=lambda w: stage_json(config, "a2d"),
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
        launcher=launch(lambda w: config["students"]["sft"]["train"]),
        cfg=lambda w: stage_json(config, "sft-bd3lm"),
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
        "{params.launcher} -m tide sft-bd3lm --config-json {params.cfg:q} --threads {threads} --init {params.init}"
        " --world {params.world} --tokenizer {params.tokenizer} --work {params.work}"
        " --out {params.out} > {log} 2>&1"


rule prepare_student:  # paper scale: a released baseline, fetched, verified and saved
    wildcard_constraints:
        name=one_of(RELEASED_STUDENTS),
    input:
        tokenizer=results("tokenizers", "student", "tokenizer.json"),
        rows=chat_rows(PROBE_SPLIT),
    output:
        model_outputs(results("students", "{name}")),
    params:
        cfg=lambda w: stage_json(config, "prepare", role=w.name),
        tokenizer=lambda w, input: parent_dir(input.tokenizer),
        out=lambda w, output: parent_dir(output[0]),
    threads: config["threads"]
    log:
        logs("students", "{name}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide prepare --config-json {params.cfg:q} --threads {threads} --role {wildcards.name}"
        " --tokenizer {params.tokenizer} --rows {input.rows} --out {params.out} > {log} 2>&1"


rule students:
    input:
        student_outputs(),
