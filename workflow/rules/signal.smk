# The teacher signal: each model's KL to its pipeline's teacher, gold NLL and top-1 on the world's
# signal_probe rows (unseen by every model), with masks fixed by distill.signal.seed.


rule teacher_signal:
    input:
        model=lambda w: model_outputs(results(w.model)),
        teacher=lambda w: teacher_outputs(PIPELINES[w.pipeline].teacher),
        cache=results("align", "{pipeline}", f"{PROBE_SPLIT}.safetensors"),
        tokenizers=tokenizer_outputs(),
    output:
        results("signal", "{pipeline}", "{model}.json"),
    params:
        cfg=lambda w: stage_json(config, "signal"),
        model=lambda w, input: parent_dir(input.model[0]),
        teacher=lambda w, input: parent_dir(input.teacher[0]),
        tokenizers=lambda w, input: parent_dir(input.tokenizers[0], up=2),
    threads: config["threads"]
    log:
        logs("signal", "{pipeline}", "{model}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide signal --config-json {params.cfg:q} --threads {threads}"
        " --pipeline {wildcards.pipeline} --model {params.model} --teacher {params.teacher}"
        " --cache {input.cache} --tokenizers {params.tokenizers} --out {output} > {log} 2>&1"


rule signal:
    input:
        signal_outputs(),
