# tide: reproduction workflow for TIDE (cross-architecture distillation of diffusion LMs).
# Thin shim: the workflow lives in workflow/. Tiny scale by default; paper scale with
#   snakemake --cores all --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/Snakefile"


rule all:  # the default target (rules of included files never are): everything
    default_target: True
    input:
        rules.reproduce.input,
