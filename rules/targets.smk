# Named targets. `all` (the default) builds every output the included rule files registered.


rule all:
    default_target: True
    input:
        ALL_TARGETS,
