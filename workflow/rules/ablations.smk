# Ablations: named runs of distill.ablations.runs (a base variant with objective fields overridden).


rule ablate_student:
    input:
        lambda w: teacher_outputs(PIPELINES[ABLATIONS[w.name]["pipeline"]].teacher),
        init=model_outputs(results("students", "bd3lm")),
        cache=lambda w: results("align", ABLATIONS[w.name]["pipeline"], f"{DISTILL_SPLIT}.safetensors"),
    output:
        model_outputs(results("ablations", "{name}", "seed{seed}")),
    params:
        launcher=launch(distill_train),
        cfg=lambda w: stage_json(config, "distill", pipeline=ABLATIONS[w.name]["pipeline"],
                                 ablation=w.name),
        pipeline=lambda w: ABLATIONS[w.name]["pipeline"],
        variant=lambda w: ABLATIONS[w.name]["variant"],
        ablation=lambda w: f"--ablation {w.name}",
        init=lambda w, input: parent_dir(input.init[0]),
        teacher=lambda w: results("teachers", PIPELINES[ABLATIONS[w.name]["pipeline"]].teacher),
        tokenizers=results("tokenizers"),
        work=lambda w: work("ablations", w.name, f"seed{w.seed}"),
        out=lambda w: results("ablations", w.name, f"seed{w.seed}"),
    threads: config["threads"]
    log:
        logs("ablations", "{name}", "seed{seed}.log"),
    conda:
        "../../environment.yml"
    shell:
        DISTILL_SHELL


rule ablations:
    input:
        [model_outputs(results(m)) for m in ABLATION_MODELS],
