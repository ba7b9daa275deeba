"""WSD trunks and branches as runs in the store: ids of their own, rows naming the trunk, exact numbers."""

import dataclasses

import pytest

from analysis.table import ExcludedRunsWarning, read_table
from experiments import store as st
from experiments.runner import run_experiment
from experiments.spec import ExperimentSpec
from experiments.wsd import branch_of, trunk_checkpoint, trunk_for

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
    short, long = wsd_spec(40), wsd_spec(60, cooldown_fraction=0.3, cooldown_shape="linear")
    trunk = trunk_for(long, steps=48)
    assert trunk == trunk_for(short, steps=48)  # cooldowns differ, the stable phase is one
    assert (trunk.schedule, trunk.tokens, trunk.trunk) == ("constant", 48 * 8 * 32, True)
    branch = branch_of(short, trunk)
    assert (branch.trunk_id, branch.branch_step) == (trunk.run_id, 32)
    assert len({branch.run_id, short.run_id, trunk.run_id}) == 3
    with pytest.raises(ValueError, match="not the trunk"):
        branch_of(short, trunk_for(wsd_spec(40, lr=3e-3), steps=48))
    with pytest.raises(ValueError, match="branch_step"):
        dataclasses.replace(branch, branch_step=31)
    with pytest.raises(ValueError, match="trunk_id"):
        dataclasses.replace(branch, trunk_id="not-an-id")


def test_a_branch_in_the_store_equals_the_independent_run(stdlib_corpus, tmp_path):
    """The trunk keeps its branch-step checkpoints; the branch row names it; loss and curve match bit for bit."""
    store, independent_store = tmp_path / "store", tmp_path / "independent"
    short, long = wsd_spec(40), wsd_spec(60)  # branch steps 32 and 48
    trunk = trunk_for(long, steps=48)
    branch = branch_of(short, trunk)
    kw = dict(corpus_path=stdlib_corpus.path, sweep="wsd", **RUN)
    with pytest.raises(ValueError, match="no checkpoint at step 32"):
        run_experiment(branch, store=store, **kw)
    assert not st.run_dir(store, branch.run_id).exists()  # refused before writing
    trunk_row = run_experiment(trunk, store=store, checkpoint_steps=(32, 48), **kw)
    assert trunk_row["status"] == "completed" and trunk_row["loss"] is None and trunk_row["role"] == "trunk"
    assert trunk_checkpoint(store, branch).exists()
    row = run_experiment(branch, store=store, **kw)
    alone = run_experiment(short, store=independent_store, **kw)
    assert (row["role"], row["trunk_id"], row["branch_tokens"]) == ("branch", trunk.run_id, 32 * 8 * 32)
    assert (row["N"], row["D"], row["C"], row["flops"]) == (alone["N"], alone["D"], alone["C"], alone["flops"])
    assert row["loss"] == alone["loss"] and row["train_loss"] == alone["train_loss"]
    ours, theirs = ((st.run_dir(s, r) / st.CURVE).read_text().splitlines()
                    for s, r in ((store, branch.run_id), (independent_store, short.run_id)))
    assert len(ours) == len(theirs) == 41  # a header and a point per step
    assert ours[33:] == theirs[33:]  # after the branch step: every column, bit for bit
    # before it the trunk's points: the same steps, FLOPs and training losses (evaluated at the trunk's times)
    assert [line.rsplit(",", 1)[0] for line in ours] == [line.rsplit(",", 1)[0] for line in theirs]
    with pytest.warns(ExcludedRunsWarning, match="WSD trunk"):
        table = read_table(store)
    assert list(table["run_id"]) == [branch.run_id]
