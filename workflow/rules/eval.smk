# Evaluation through lm-eval: a sanity check per model, then one job per (model, task). The sanity
# check runs a few items of the tiny world's tasks; at paper scale (no world) the evaluation starts
# directly and the checkpoints' own checks (tide.checkpoints) stand before it.


rule sanity_check:
    input:
        model_outputs(results("{model}")),
        world=world_outputs(),
    output:
        results("eval", "{model}", "sanity", "summary.json"),
    params:
        cfg=lambda w: stage_json(config, "sanity"),
        model=lambda w: results(w.model),
        world=lambda w, input: parent_dir(input.world[0]),
        out=lambda w: results("eval", w.model, "sanity"),
    threads: config["threads"]
    log:
        logs("eval", "{model}", "sanity.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide sanity --config-json {params.cfg:q} --threads {threads} --model {params.model}"
        " --world {params.world} --out {params.out} > {log} 2>&1"


rule eval_task:
    input:
        model_outputs(results("{model}")),
        [results("eval", "{model}", "sanity", "summary.json")] if WORLD else [],
    output:
        results("eval", "{model}", "{task}", "{task}.json"),
    params:
        cfg=lambda w: stage_json(config, "eval"),
        model=lambda w: results(w.model),
        world=f"--world {results('world')}" if WORLD else "",
        out=lambda w: results("eval", w.model, w.task),
    threads: config["threads"]
    log:
        logs("eval", "{model}", "{task}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide eval --config-json {params.cfg:q} --threads {threads} --model {params.model}"
        " {params.world} --tasks {wildcards.task} --out {params.out} > {log} 2>&1"


rule eval:
    input:
        eval_outputs(BASELINE_MODELS),
