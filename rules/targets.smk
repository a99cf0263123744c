# Included last: every rules/*.smk before it has registered its final outputs in ALL_TARGETS.
