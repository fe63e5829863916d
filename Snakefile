# tide: reproduction workflow for TIDE (cross-architecture distillation of diffusion LMs).
# Thin shim: the workflow lives in workflow/. Tiny scale by default; paper scale with
#   snakemake --profile profiles/slurm --configfile config/paper.yaml
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml (tiny) is the base that other configs (smoke) are merged over; a config that
# stands alone (paper scale, which states every key) replaces it: no tiny value slips under it
from tide.config import stands_alone

if not stands_alone(workflow.overwrite_configfiles):

    configfile: f"{workflow.basedir}/config/config.yaml"


include: "workflow/Snakefile"


rule all:  # the default target (rules of included files never are): everything
    default_target: True
    input:
        rules.reproduce.input,
