"""sweeps: sweep files, what they plan, and the pure scheduling decisions the Ray layer executes.

    config.py    YAML sweep files -> validated frozen SweepConfig (errors name file, key path, reason)
    plan.py      SweepConfig -> SweepPlan: the ExperimentSpecs with N, D, C, FLOPs, memory and time
    schedule.py  what still needs running, in which order, with which resources (no Ray import)
    *.yaml       presets: tiny (tests), demo (2-core CPU), gpu (one GPU), cluster

Imports `experiments` and `lm`, never `analysis`; Ray is imported only by the launch layer.
"""
