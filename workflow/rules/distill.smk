# Distillation: {pipeline} x {variant} x {seed}, each from the BD3LM baseline against its teacher.

def distill_train(wildcards):
    """The trainer settings of a distillation run: distill.train, its pipeline's overrides over it."""
    pipeline = wildcards.get("pipeline") or ABLATIONS[wildcards.name]["pipeline"]
    return pipeline_train(config["distill"], pipeline)


# the command of every distillation run (ablations.smk adds `--ablation NAME` through params.ablation)
DISTILL_SHELL = (
    "{params.launcher} -m tide distill --config-json {params.cfg:q} --threads {threads}"
    " --pipeline {params.pipeline} --variant {params.variant} {params.ablation}"
    " --seed {wildcards.seed} --init {params.init} --teacher {params.teacher} --cache {input.cache}"
    " --tokenizers {params.tokenizers} --work {params.work} --out {params.out} > {log} 2>&1"
)


rule distill_student:
    input:
        lambda w: teacher_outputs(PIPELINES[w.pipeline].teacher),
        init=model_outputs(results("students", "bd3lm")),
        cache=results("align", "{pipeline}", f"{DISTILL_SPLIT}.safetensors"),
    output:
        model_outputs(results("distill", "{pipeline}", "{variant}", "seed{seed}")),
    params:
        launcher=launch(distill_train),
        cfg=lambda w: stage_json(config, "distill", pipeline=w.pipeline),
        pipeline=lambda w: w.pipeline,
        variant=lambda w: w.variant,
        ablation="",
        init=lambda w, input: parent_dir(input.init[0]),
        teacher=lambda w: results("teachers", PIPELINES[w.pipeline].teacher),
        tokenizers=results("tokenizers"),
        work=lambda w: work("distill", w.pipeline, w.variant, f"seed{w.seed}"),
        out=lambda w: results("distill", w.pipeline, w.variant, f"seed{w.seed}"),
    threads: config["threads"]
    log:
        logs("distill", "{pipeline}", "{variant}", "seed{seed}.log"),
    conda:
        "../../environment.yml"
    shell:
        DISTILL_SHELL


rule distill:
    input:
        [model_outputs(results(m)) for m in DISTILL_MODELS],
