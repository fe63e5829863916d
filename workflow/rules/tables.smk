# The paper's tables and figures, from the evaluation results, the distilled models' loss curves,
# the teacher signals and the profiles only: after `dvc pull evaluation`,
# `snakemake --allowed-rules tables` rebuilds them from those.

rule loss_curve:  # a trained model's loss.csv, kept beside the evaluation results
    input:
        model_outputs(results("{model}")),
    output:
        results("curves", "{model}", "loss.csv"),
    params:
        curve=lambda w: results(w.model, "loss.csv"),
    log:
        logs("curves", "{model}.log"),
    conda:
        "../../environment.yml"
    shell:
        "cp {params.curve} {output} 2> {log}"


rule tables:
    input:
        evals=eval_outputs(BASELINE_MODELS + DISTILL_MODELS + ABLATION_MODELS),
        curves=[results("curves", m, "loss.csv") for m in DISTILL_MODELS],
        signal=signal_outputs(),
        profile=profile_outputs(),
    output:
        *[report(path, caption="../report/table.rst", category="Tables")
          for path in table_outputs()],
        *[report(path, caption=f"../report/{name}.rst", category="Figures")
          for name, path in zip(FIGURES, figure_outputs())],
        record=results("tables", "provenance.json"),
    params:
        cfg=lambda w: stage_json(config, "tables"),
        eval=lambda w: results("eval"),
        curves=lambda w: results("curves"),
        signal=lambda w: results("signal"),
        profile=lambda w: results("profile"),
        tables=lambda w, output: parent_dir(output.record),
        figures=lambda w, output: parent_dir(output[-2]),
    log:
        logs("tables.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide tables --config-json {params.cfg:q} --eval {params.eval} --curves {params.curves}"
        " --signal {params.signal} --profile {params.profile} --figures {params.figures}"
        " --out {params.tables} > {log} 2>&1"
