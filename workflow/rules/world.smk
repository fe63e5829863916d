# The tiny world: corpus splits (pretrain / sft / distill, which models train on; distill_unseen /
# signal_probe, which none does) + held-out files of the 8 task families.


rule make_world:
    output:
        world_outputs(),
        unseen_outputs(),
    params:
        cfg=lambda w: stage_json(config, "world"),
        out=lambda w, output: parent_dir(output[0]),
    log:
        logs("world.log"),
    conda:
        "../../environment.yml"
    shell:
        "python -m tide world --config-json {params.cfg:q} --out {params.out} > {log} 2>&1"
