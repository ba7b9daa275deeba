"""sweeps: sweep files, what they plan, and the pure scheduling decisions the Ray layer executes.

    config.py    YAML sweep files -> validated frozen SweepConfig (errors name file, key path, reason)
    plan.py      SweepConfig -> SweepPlan: the ExperimentSpecs with N, D, C, FLOPs, memory and time
    schedule.py  what still needs running, in which order, with which resources (no Ray import)
    launch.py    the Ray layer: launch, wait, retry, record
    distributed.py  one run on k Ray Train workers (data-parallel), for runs bigger than one device
    warm.py      imported by each local Ray worker as it starts, so its first run does not pay the imports
    size_lattice.py  IsoFLOP size targets on one lattice shared by every budget (WSD trunks serve several)
    *.yaml       presets: tiny (tests), demo (2-core CPU), gpu (one GPU), cluster; *-wsd: the same with WSD branches

Imports `experiments` and `lm`, never `analysis`; Ray is imported only by the launch layer.
"""
