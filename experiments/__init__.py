"""experiments: one training run as a content-addressed spec, and the durable run store it leaves behind.

    spec.py        ExperimentSpec: everything that determines a run's numbers; its run_id is a hash of it
    store.py       the run store's layout (<store>/runs/<run_id>/...), atomic writes, readers
    provenance.py  which code and packages produced a run (git SHA, dirty flag, versions, host)
    run_result.py  RunResult: a run's row of the results table, typed (row.json only at the store's edge)
    runner.py      run_experiment: train one spec into the store, resumably, recording failures

Imports `lm` only (never `sweeps` or `analysis`).
"""
