"""WSD trunks and branches as runs in the store: ids of their own, rows naming the trunk, exact numbers."""

import dataclasses

import pytest

from analysis.table import ExcludedRunsWarning, read_table
from experiments import store as st
from experiments.runner import run_experiment
from experiments.spec import ExperimentSpec
from experiments.wsd import branch_of, final_checkpoint, line_of, trunk_for, trunk_of

RUN = dict(threads=1, device="cpu", peak_flops=1e11)


def wsd_spec(steps: int, **overrides) -> ExperimentSpec:
    """A 1-layer, width-16 WSD run of `steps` steps on the session corpus (tests/conftest.py)."""
    fields = dict(n_layers=1, d_model=16, n_heads=2, tokens=steps * 8 * 32, batch_size=8, context_length=32, lr=1e-2,
                  schedule="wsd", warmup_steps=4, cooldown_fraction=0.2, cooldown_shape="1-sqrt", eval_tokens=1024,
                  corpus_source="stdlib", vocab_size=512, corpus_max_bytes=400_000)
    fields.update(overrides)
    return ExperimentSpec(**fields)


def test_new_fields_at_their_defaults_leave_old_ids_and_spec_files_alone():
    spec = wsd_spec(40, schedule="cosine", warmup_steps=None, cooldown_shape="linear")
    assert not {"cooldown_shape", "warmup_steps", "trunk", "trunk_id", "branch_step"} & set(spec.to_dict())
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec


def test_trunk_and_branch_specs_are_shared_and_distinct():
    short, long = wsd_spec(40), wsd_spec(64, cooldown_fraction=0.5, cooldown_shape="linear")  # both branch at 32
    trunk = trunk_of(short)
    assert trunk == trunk_of(long)  # cooldowns differ, the stable phase is one
    assert (trunk.schedule, trunk.tokens, trunk.trunk) == ("constant", 32 * 8 * 32, True)
    assert line_of(trunk) == line_of(trunk_for(short, steps=48)) == line_of(short) != line_of(wsd_spec(40, lr=3e-3))
    branch = branch_of(short)
    assert (branch.trunk_id, branch.branch_step) == (trunk.run_id, 32)
    assert len({branch.run_id, branch_of(long).run_id, short.run_id, trunk.run_id}) == 4
    with pytest.raises(ValueError, match="branch_step"):
        dataclasses.replace(branch, branch_step=31)
    with pytest.raises(ValueError, match="trunk_id"):
        dataclasses.replace(branch, trunk_id="not-an-id")


def test_a_line_of_trunks_and_its_branches_equal_independent_runs(stdlib_corpus, tmp_path):
    """The second trunk starts from the first; each keeps its last step; branch rows name their trunk; the
    branches' losses and curves after the branch step match independent WSD runs bit for bit."""
    store, independent_store = tmp_path / "store", tmp_path / "independent"
    short, long = wsd_spec(40), wsd_spec(60)  # branch steps 32 and 48
    first, second = trunk_of(short), trunk_of(long)
    kw = dict(corpus_path=stdlib_corpus.path, sweep="wsd", **RUN)
    with pytest.raises(ValueError, match="starting checkpoint"):
        run_experiment(branch_of(short), store=store, **kw)
    assert not st.run_dir(store, branch_of(short).run_id).exists()  # refused before writing
    first_row = run_experiment(first, store=store, **kw)
    assert first_row.status == "completed" and first_row.loss is None and first_row.role == "trunk"
    second_row = run_experiment(second, store=store, start_from=final_checkpoint(store, first.run_id, 32), **kw)
    assert second_row.resumed_from_step == 32 and second_row.D == 48 * 8 * 32
    for spec, step in ((short, 32), (long, 48)):
        branch = branch_of(spec)
        row = run_experiment(branch, store=store, **kw)
        alone = run_experiment(spec, store=independent_store, **kw)
        assert (row.role, row.trunk_id, row.branch_tokens) == ("branch", branch.trunk_id, step * 8 * 32)
        assert (row.N, row.D, row.C, row.flops) == (alone.N, alone.D, alone.C, alone.flops)
        assert row.loss == alone.loss and row.train_loss == alone.train_loss
        ours, theirs = ((st.run_dir(s, r) / st.CURVE).read_text().splitlines()
                        for s, r in ((store, branch.run_id), (independent_store, spec.run_id)))
        assert len(ours) == len(theirs) == spec.steps + 1  # a header and a point per step
        assert ours[step + 1:] == theirs[step + 1:]  # after the branch step: every column, bit for bit
        # before it the trunks' points: the same steps, FLOPs and training losses (evaluated at other times)
        assert [line.rsplit(",", 1)[0] for line in ours] == [line.rsplit(",", 1)[0] for line in theirs]
    with pytest.warns(ExcludedRunsWarning, match="WSD trunk"):
        table = read_table(store)
    assert sorted(table["run_id"]) == sorted([branch_of(short).run_id, branch_of(long).run_id])
