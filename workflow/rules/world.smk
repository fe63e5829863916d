# The tiny world: corpus splits (pretrain / sft / distill) + held-out files of the 8 task families.


rule make_world:
    output:
        world_outputs(),
    params:
        cfg=lambda w: cfg_json("world"),
        out=results("world"),
    log:
        logs("world.log"),
    shell:
        "{TIDE} world --config-json {params.cfg:q} --out {params.out} > {log} 2>&1"
