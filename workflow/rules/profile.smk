# Efficiency profiling (method.md §h): peak memory and time to generate profile.gen_length tokens,
# best of profile.repeats runs, for the BD3LM student (the distilled students share its
# architecture and cost), each teacher, and the paper models' real shapes with random weights. At
# paper scale the same rule profiles the prepared checkpoints on one GPU (bf16).


rule profile_model:
    input:
        model_outputs(results("{model}")),
    output:
        results("profile", "{model}.json"),
    params:
        cfg=lambda w: stage_json(config, "profile"),
        model=lambda w: results(w.model),
    threads: config["profile"]["threads"]
    log:
        logs("profile", "{model}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide profile --config-json {params.cfg:q} --threads {threads}"
        " --model {params.model} --out {output} > {log} 2>&1"


rule profile_shape:  # a paper model's real shape built from its config, random weights
    output:
        results("profile", "shapes", "{shape}.json"),
    params:
        cfg=lambda w: stage_json(config, "profile"),
    threads: config["profile"]["threads"]
    log:
        logs("profile", "shapes", "{shape}.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide profile --config-json {params.cfg:q} --threads {threads}"
        " --shape {wildcards.shape} --out {output} > {log} 2>&1"


rule profile:
    input:
        profile_outputs(),
