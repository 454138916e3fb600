"""The whole DAG of the test experiment (.test/config.yaml: every method at one rho and one seed on
a tiny model): artifacts, exact influence, partition counts, distinct checkpoints, a no-op rerun, a
rho change that reruns only what depends on it, a second rho and a second seed run beside the first,
a lost checkpoint rebuilt, and a second experiment beside the first."""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import ROOT, dry_runs, load_test_config, make_test_workdir, planned_jobs, snakemake
from option_changes import CHANGES
from snakemake.utils import update_config, validate
from workflow_scripts import option_classes, runs
from workflow_scripts.option_classes import plan_problems, read_in

CONFIG = load_test_config()
MODEL, DATASET = CONFIG["model"]["name"], CONFIG["data"]["name"]
EXPERIMENT = f"{DATASET}/{MODEL}"
GRID = runs.grid({**CONFIG, "partition": {"scope": "global", "score": "influence"},
                  "forget": {"forget_loss": "ascent", "lambda_schedule": "linear"}})
RUNS = [run.label for run in GRID]
TASKS = CONFIG["eval"]["tasks"]
OPTIONS = option_classes.options(yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text()))


def checkpoint(label):
    """Where a run's adapter lies (self_evolving: its last round's)."""
    return f"{label}/{runs.parse(label).checkpoint}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_model_dir):
    workdir = make_test_workdir(tmp_path_factory.mktemp("workflow"), tiny_model_dir)
    result = snakemake(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


def test_the_grid_is_every_method():
    assert len(RUNS) == 1 + 5
    assert {run.split("/")[0] for run in RUNS} == set(runs.METHODS)
    assert "forget/rho0.7-ascent-linear/seed1" in RUNS and "self_evolving/rho0.7-K2-ascent-linear/seed1" in RUNS


def test_every_artifact_exists(workdir):
    results = workdir / "results" / DATASET
    expected = [
        "data/pool.jsonl", "data/reference.jsonl", "data/train.jsonl",
        *[f"data/eval/{t}.jsonl" for t in TASKS],
        f"{MODEL}/tokens/reference.parquet", f"{MODEL}/tokens/train.parquet",
        f"{MODEL}/reference/adapter_model.safetensors", f"{MODEL}/reference.training_log.json",
        f"{MODEL}/losses/base.parquet", f"{MODEL}/losses/reference.parquet",
        f"{MODEL}/influence.parquet", f"{MODEL}/rho0.7/partition.parquet", f"{MODEL}/rho0.7/partition.json",
        f"{MODEL}/rho0.7-random/seed1/partition.parquet",
        *[f"{MODEL}/{checkpoint(run)}/adapter_model.safetensors" for run in RUNS],
        *[f"{MODEL}/{run}/training_log.json" for run in RUNS if not run.startswith("self_evolving")],
        f"{MODEL}/self_evolving/rho0.7-K2-ascent-linear/seed1/round1/partition.parquet",
        *[f"{MODEL}/{run}/scores/{t}.json" for run in ["base", *RUNS] for t in TASKS],
        *[f"{MODEL}/{name}" for name in ("summary.csv", "summary_by_method.csv", "summary.md", "timings.csv",
                                         "tokens.html")],
    ]
    missing = [p for p in expected if not (results / p).is_file()]
    assert not missing
    assert (workdir / f"resources/models/{MODEL}/model.safetensors").is_file()
    logs = {p.relative_to(workdir / "logs").as_posix() for p in (workdir / "logs").rglob("*.log")}
    assert {f"{DATASET}/prepare_data.log", f"{DATASET}/split.log", f"{EXPERIMENT}/train_reference.log",
            f"{EXPERIMENT}/summary.log"} <= logs


def test_influence_is_exactly_base_minus_reference(workdir):
    results = workdir / "results" / EXPERIMENT
    base = pq.read_table(results / "losses/base.parquet")
    ref = pq.read_table(results / "losses/reference.parquet")
    influence = pq.read_table(results / "influence.parquet")
    assert base.num_rows == ref.num_rows == influence.num_rows > 0
    np.testing.assert_array_equal(influence["influence"].to_numpy(),
                                  base["loss"].to_numpy() - ref["loss"].to_numpy())
    assert influence["influence"].type == base["loss"].type  # float32 throughout


@pytest.mark.parametrize("partition", ["rho0.7", "rho0.7-random/seed1"])
def test_positive_count_is_round_rho_n(workdir, partition):
    part = pq.read_table(workdir / "results" / EXPERIMENT / partition / "partition.parquet")
    n_positive = int(np.sum(part["positive"].to_numpy(zero_copy_only=False)))
    assert n_positive == round(float(partition[3:6]) * part.num_rows)


def differ(one, other) -> bool:
    """Two checkpoints (an adapter merged into its base, or the base model itself) hold different
    weights: two layers compared, each must differ. Adapters name their base from the workdir."""
    import contextlib

    import torch

    from workflow_scripts.modeling import load_causal_lm

    workdir = next(parent for parent in one.parents if (parent / "resources").is_dir())
    with contextlib.chdir(workdir):
        one, other = (load_causal_lm(str(path), place=False).state_dict() for path in (one, other))
    return all(not torch.equal(one[name], other[name])
               for name in ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"])


def test_methods_give_different_checkpoints(workdir):
    folders = {"base": workdir / f"resources/models/{MODEL}",
               **{run: workdir / "results" / EXPERIMENT / checkpoint(run) for run in RUNS}}
    for i, one in enumerate(folders):
        for other in list(folders)[i + 1:]:
            assert differ(folders[one], folders[other]), (one, other)


def test_summary_has_a_row_per_checkpoint(workdir):
    lines = (workdir / "results" / EXPERIMENT / "summary.csv").read_text().splitlines()
    assert lines[0] == "model,method,variant,seed,asdiv_acc,boolq_acc,logiqa_acc_norm,mean"
    rows = [tuple(line.split(",")[1:4]) for line in lines[1:]]
    assert len(rows) == len(set(rows)) == 1 + len(RUNS)
    expected = [("base", "", "")] + [(run.method, run.variant, str(run.seed)) for run in GRID]
    assert sorted(rows) == sorted(expected)
    assert [row[0] for row in rows][:2] == ["base", "sft"]


@pytest.mark.parametrize("name", ["scores", "influence", "training"])
def test_figures_are_valid_pngs(workdir, name):
    from PIL import Image

    path = workdir / "results" / EXPERIMENT / "plots" / f"{name}.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
        assert image.size[0] > 300 and image.size[1] > 200


def test_token_page_colours_every_shown_response_token(workdir):
    page = (workdir / "results" / EXPERIMENT / "tokens.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert page.count('class="example"') == 16  # every training example: the tiny split has 16
    spans = re.findall(r'<span class="tok( neg)?( noisy)?" style="background:rgb\(\d+,\d+,\d+\)" title="influence',
                       page)
    n_tokens = pq.read_table(workdir / "results" / EXPERIMENT / "influence.parquet").num_rows
    assert len(spans) == n_tokens
    assert sum(1 for neg, _ in spans if neg) == n_tokens - round(0.7 * n_tokens)


def test_snakemake_report_is_self_contained(workdir):
    result = snakemake(workdir, "--report", workdir / "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    report = (workdir / "report.html").read_text()
    assert len(report) > 100_000
    for caption in ("Forgetting", "Influence (loss under the base model", "Sample training responses"):
        assert caption in report


def test_results_record_the_code_and_config_that_made_them(workdir):
    """The commit of this checkout (and whether it is dirty), one config hash, the config as run."""
    import json

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True,
                                text=True).stdout.strip())
    results = workdir / "results" / EXPERIMENT
    records = [json.loads((results / path).read_text())["provenance"] for path in
               ("forget/rho0.7-ascent-linear/seed1/training_log.json", "base/scores/boolq.json",
                "reference.training_log.json")]
    assert {(r["commit"], r["dirty"]) for r in records} == {(head, dirty)}
    assert len({r["config_sha"] for r in records}) == 1
    sha = records[0]["config_sha"]
    assert (results / "configs" / f"{sha}.yaml").read_text() == (results / "config.yaml").read_text()
    assert f"commit {head}" in (results / "config.yaml").read_text()
    assert records[0]["seed"] == 1 and records[2]["seed"] == 0  # the run's seed; the reference's
    assert "## Provenance" in (results / "summary.md").read_text()


def test_second_run_is_a_no_op(workdir):
    result = snakemake(workdir, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_rho_reruns_only_partition_and_downstream(workdir):
    (workdir / "rho.yaml").write_text("rho: [0.7, 0.3]\n")
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "rho.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    # rho 0.3: ignore, forget, random, rho1 retrained, self_evolving's two rounds too; sft and
    # everything of rho 0.7 untouched. The noise audit reads every partition of the grid, so it is
    # redone too.
    assert planned_jobs(result) == {"partition": 1, "random_partition": 1, "train_final": 4,
                                    "self_evolving_round": 2, "evaluate": 15, "noise_audit": 1, "summary": 1,
                                    "plots": 1, "all": 1}


def test_changing_the_score_reruns_only_partition_and_downstream(workdir):
    (workdir / "score.yaml").write_text("partition: {score: relative_influence}\n")
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "score.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    # The partition by the new score; ignore and forget retrained, and self_evolving's two rounds;
    # sft, random and rho1 (no score) and every upstream table untouched.
    assert planned_jobs(result) == {"partition": 1, "train_final": 2, "self_evolving_round": 2, "evaluate": 9,
                                    "noise_audit": 1, "summary": 1, "plots": 1, "token_page": 1, "all": 1}
    assert "results/tiny-pool/tiny/rho0.7-relative_influence/partition.parquet" in result.stdout


def test_changing_the_partition_rule_reruns_only_partition_and_downstream(workdir):
    (workdir / "rule.yaml").write_text("partition: {rule: threshold, threshold: 0.0}\n")
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "rule.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    # One partition (below0, no rho); ignore and forget retrained; sft, random, rho1 and
    # self_evolving (no partition rule) and every upstream table untouched.
    assert planned_jobs(result) == {"partition": 1, "train_final": 2, "evaluate": 6, "noise_audit": 1,
                                    "summary": 1, "plots": 1, "token_page": 1, "all": 1}
    assert "results/tiny-pool/tiny/below0/partition.parquet" in result.stdout
    assert "--rule threshold --threshold 0.0" in result.stdout


# Each option reaches the jobs that read it and no other (the test experiment: 6 runs and the base
# model x 3 lm-eval tasks; one user pool, so the two subsets' overlap rule has nothing to say).
@pytest.mark.parametrize("overlay,jobs", [
    ("eval: {add_bos_token: false}", {"evaluate": 21, "summary": 1, "plots": 1, "all": 1}),
    ("eval: {decodings: 2}", {"decode": 21, "summary": 1, "plots": 1, "all": 1}),  # what each checkpoint writes
    # A rule's own options rerun nothing while no run of the grid uses that rule or loss.
    ("partition: {tail: 0.2, threshold: -1.0}", {}),
    ("forget: {npo_beta: 2.0}", {}),
    ("eval: {tydiqa_temperature: 1.0, tydiqa_samples: 3}", {}),  # no TyDi QA task here
    ("split: {drop_overlap: false}", {}),  # one pool: no overlap to keep
    # A task more or less: its evaluate jobs and the tables; the pool and every checkpoint stay.
    ("eval: {tasks: [boolq, asdiv]}", {"summary": 1, "plots": 1, "all": 1}),
    ("eval: {tasks: [boolq, asdiv, logiqa, boolq_short]}", {"evaluate": 7, "summary": 1, "plots": 1, "all": 1}),
    ("training: {max_grad_norm: null}", {"train_reference": 1, "score_shard": 1, "gather_losses": 1, "influence": 1,
                                         "partition": 1, "train_final": 5, "self_evolving_round": 2, "evaluate": 18,
                                         "noise_audit": 1, "summary": 1, "plots": 1, "token_page": 1, "all": 1}),
])
def test_an_option_reruns_the_jobs_that_read_it(workdir, overlay, jobs):
    (workdir / "option.yaml").write_text(overlay + "\n")
    result = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "option.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_jobs(result) == jobs
    if not jobs:
        assert "Nothing to be done" in result.stdout + result.stderr
    if "add_bos_token" in overlay:
        commands = [line for line in result.stdout.splitlines() if "workflow_scripts.evaluate" in line]
        assert len(commands) == 21 and all("--no-add-bos-token" in line for line in commands)


def planned_roots(output: str) -> set[str]:
    """The rules of the planned jobs that no other planned job feeds: where a change enters the plan."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", output):
        match = re.match(r"(?:local)?rule (\w+):", block)
        if match and match.group(1) != "all":
            paths = {key: set(re.findall(r"[^,\s]+", found.group(1))) if found else set()
                     for key in ("input", "output") for found in [re.search(rf"^\s+{key}: (.*)$", block, re.M)]}
            jobs.append((match.group(1), paths["input"], paths["output"]))
    made = set().union(*(outputs for _, _, outputs in jobs)) if jobs else set()
    return {rule for rule, inputs, _ in jobs if not inputs & made}


@pytest.fixture(scope="module")
def option_plans(workdir):
    """path -> the dry run of the test experiment with that option changed alone (a second config
    file, as a user lays one over config.yaml); two at a time, since dry runs take no lock."""
    (workdir / "changes").mkdir()
    for path in CHANGES:
        (workdir / "changes" / f"{path}.yaml").write_text(CHANGES[path] + "\n")
    return dry_runs(workdir, {path: ["--configfile", workdir / "config.yaml", workdir / "changes" / f"{path}.yaml"]
                              for path in CHANGES})


def test_forked_dry_runs_plan_as_snakemake_does(workdir):
    """conftest.dry_runs (the option plans below) against `snakemake --dry-run` run as usual: the
    same exit code and the same planned jobs, for a change that plans jobs and a config refused."""
    (workdir / "forked-rho.yaml").write_text("rho: [0.7, 0.3]\n")
    (workdir / "forked-bad.yaml").write_text("rho: [2.0]\n")
    overlays = {name: ["--configfile", workdir / "config.yaml", workdir / f"forked-{name}.yaml"]
                for name in ("rho", "bad")}
    forked = dry_runs(workdir, overlays)
    for name, args in overlays.items():
        usual = snakemake(workdir, "--dry-run", "--nolock", *args)
        assert (forked[name].returncode, planned_jobs(forked[name])) == (usual.returncode, planned_jobs(usual))
    assert forked["rho"].returncode == 0 and planned_jobs(forked["rho"])["train_final"] == 4
    assert forked["bad"].returncode != 0
    assert "2.0 is greater than the maximum of 1" in forked["bad"].stdout + forked["bad"].stderr


def changed_config(path: str) -> dict:
    """The test experiment's config with the option's change laid over it, validated."""
    config = load_test_config()
    update_config(config, yaml.safe_load(CHANGES[path]))
    validate(config, str(ROOT / "schemas/config.schema.yaml"), set_default=True)
    return config


@pytest.fixture(scope="module")
def option_dags(workdir, option_plans):
    """path -> the rules with jobs in the changed config's whole DAG (a --forceall dry run), for each
    option read whose x-reads rules the change did not all plan: whether those rules have jobs there."""
    unplanned = [path for path in CHANGES if read_in(OPTIONS[path], changed_config(path))
                 and set(OPTIONS[path].reads) - set(planned_jobs(option_plans[path]))]
    dags = dry_runs(workdir, {path: ["--forceall", "--configfile", workdir / "config.yaml",
                                     workdir / "changes" / f"{path}.yaml"] for path in unplanned})
    return {path: set(planned_jobs(result)) - {"all"} for path, result in dags.items()}


# Every option of the schema, changed alone: an operational one, or one that no rule reads in this
# experiment (x-when), plans nothing; any other plans something, every job it plans is a job of a
# rule that reads it (x-reads), whose jobs its values add (x-grid), or one that follows them, and
# every x-reads rule with jobs in the changed config's DAG has some planned
# (option_classes.plan_problems). The changes: option_changes.py.
@pytest.mark.parametrize("path", sorted(CHANGES))
def test_each_option_reruns_what_reads_it_and_nothing_else(option_plans, option_dags, path):
    option = OPTIONS[path]
    result = option_plans[path]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    read = read_in(option, changed_config(path))
    planned = set(planned_jobs(result)) - {"all"}
    roots = planned_roots(result.stdout) if planned else set()
    if read:
        assert planned and roots, f"{path} reads {option.reads} and plans nothing"
    else:
        assert "Nothing to be done" in result.stdout + result.stderr, f"{path}: {planned_jobs(result)}"
    problems = plan_problems(option, read, planned, roots, option_dags.get(path, planned))
    assert not problems, "; ".join(problems)


@pytest.mark.parametrize("run,allowed", [
    ("sft/rho0.7-per_example/seed1", "sft variants read all"),
    ("ignore/rho0.7-ascent-linear/seed1",
     "ignore variants read {partition} ({partition} is rho{rho}[-{scope}][-{score}]"),
    ("forget/rho0.7/seed1", "forget variants read {partition}-{objective}"),
])
def test_a_run_outside_the_grammar_is_refused_at_planning(workdir, run, allowed):
    result = snakemake(workdir, "--dry-run", f"results/{EXPERIMENT}/{run}/model")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert allowed in output
    assert "this config grid has" in output  # and the variants the config does have
    assert "train_final" not in planned_jobs(result)


def test_a_lost_checkpoint_is_rebuilt(workdir):
    lost = workdir / "results" / EXPERIMENT / "forget/rho0.7-ascent-linear/seed1/model"
    shutil.move(lost, workdir / "moved-away")
    try:
        result = snakemake(workdir, "--dry-run")
    finally:
        shutil.move(workdir / "moved-away", lost)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["train_final"] == 1 and jobs["evaluate"] == len(TASKS)
    assert snakemake(workdir, "--dry-run").stdout.count("Nothing to be done") == 1


def test_a_second_experiment_lives_beside_the_first(workdir):
    """Another pool under another data name: both cached, neither makes the other stale."""
    pool = (workdir / "data/pool.jsonl").read_text().splitlines()
    (workdir / "data/pool-small.jsonl").write_text("\n".join(pool[:20]) + "\n")
    (workdir / "other.yaml").write_text(
        "data: {name: small-pool, pool: data/pool-small.jsonl, eval: data/eval}\n"
        "methods: [sft]\nseeds: [1]\nsplit: {reference_size: 4, train_size: 12}\neval: {tasks: [boolq]}\n")
    other = ["--configfile", workdir / "config.yaml", workdir / "other.yaml"]
    result = snakemake(workdir, *other)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (workdir / "results/small-pool/tiny/sft/all/seed1/model/adapter_model.safetensors").is_file()
    for args in ([], other):
        again = snakemake(workdir, "--dry-run", *args)
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]


def test_two_experiments_are_one_dag(workdir, tiny_model_dir, tmp_path):
    """The two experiments above as entries of one config's `experiments:` list: from nothing, what
    they share (the base model) is planned once; after their runs, nothing is stale; a change to one
    entry's options plans that experiment's jobs and nothing of the other's."""
    (workdir / "both.yaml").write_text("experiments:\n  - {}\n  - other.yaml\n")  # read from the workdir
    both = ["--configfile", workdir / "config.yaml", workdir / "both.yaml"]
    fresh = make_test_workdir(tmp_path / "fresh", tiny_model_dir)
    shutil.copy(workdir / "other.yaml", fresh)
    shutil.copy(workdir / "data/pool-small.jsonl", fresh / "data")
    shutil.copy(workdir / "both.yaml", fresh)
    planned = planned_jobs(snakemake(fresh, "--dry-run", "--configfile", fresh / "config.yaml", fresh / "both.yaml"))
    alone = planned_jobs(snakemake(fresh, "--dry-run"))
    assert planned["base_model"] == alone["base_model"] == 1
    assert planned["prepare_data"] == 2 and planned["train_final"] == alone["train_final"] + 1
    assert planned["summary"] == 2 and planned["all"] == 1

    again = snakemake(workdir, "--dry-run", *both)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    (workdir / "changed.yaml").write_text("experiments:\n  - {}\n  - [other.yaml, {training: {learning_rate: 0.02}}]\n")
    changed = snakemake(workdir, "--dry-run", "--configfile", workdir / "config.yaml", workdir / "changed.yaml")
    assert planned_jobs(changed) == {"train_final": 1, "evaluate": 1, "summary": 1, "plots": 1, "all": 1}
    outputs = re.findall(r"^\s+output: (.*)$", changed.stdout, re.M)
    assert outputs and all("results/small-pool/" in line for line in outputs), outputs


def test_a_second_rho_plans_and_runs_beside_the_first(workdir):
    """rho 1e-05 is written rho0.00001 and builds like any other value (no grid value is dropped);
    its forget run trains other weights than rho 0.7's."""
    (workdir / "tiny-rho.yaml").write_text("rho: [0.7, 0.00001]\n")
    overlay = ["--configfile", workdir / "config.yaml", workdir / "tiny-rho.yaml"]
    plan = planned_jobs(snakemake(workdir, "--dry-run", *overlay))
    assert plan["partition"] == 1 and plan["train_final"] == 4 and plan["summary"] == 1
    target = f"results/{EXPERIMENT}/forget/rho0.00001-ascent-linear/seed1/model"
    result = snakemake(workdir, target, *overlay)  # targets first: --configfile takes every path after it
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stats = (workdir / "results" / EXPERIMENT / "rho0.00001/partition.json").read_text()
    assert '"n_positive": 0' in stats and (workdir / target / "adapter_model.safetensors").is_file()
    assert differ(workdir / target, workdir / "results" / EXPERIMENT / "forget/rho0.7-ascent-linear/seed1/model")


def test_a_second_seed_plans_and_runs_beside_the_first(workdir):
    """A seed added plans that seed's runs alone (the random partition is drawn per seed); its
    random run trains on another draw, to other weights."""
    (workdir / "seed2.yaml").write_text("seeds: [1, 2]\n")
    overlay = ["--configfile", workdir / "config.yaml", workdir / "seed2.yaml"]
    plan = planned_jobs(snakemake(workdir, "--dry-run", *overlay))
    assert plan == {"random_partition": 1, "train_final": 5, "self_evolving_round": 2, "evaluate": 18,
                    "noise_audit": 1, "summary": 1, "plots": 1, "all": 1}
    target = f"results/{EXPERIMENT}/random/rho0.7-random-ascent-linear/seed2/model"
    result = snakemake(workdir, target, *overlay)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    partitions = [pq.read_table(workdir / "results" / EXPERIMENT / f"rho0.7-random/seed{seed}/partition.parquet")
                  for seed in (1, 2)]
    assert not partitions[0]["positive"].equals(partitions[1]["positive"])
    assert sum(partitions[1]["positive"].to_pylist()) == round(0.7 * partitions[1].num_rows)
    assert differ(workdir / target, workdir / "results" / EXPERIMENT / "random/rho0.7-random-ascent-linear/seed1/model")


def test_rules_run_the_python_that_runs_snakemake(workdir):
    """`.venv/bin/snakemake` without an activated venv: no `python` with pyarrow on PATH."""
    (workdir / "path.yaml").write_text("data: {name: path-test}\n")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "results/path-test/data/train.jsonl",
                             "--directory", str(workdir), "--cores", "1", "--snakefile", str(ROOT / "Snakefile"),
                             "--configfile", workdir / "config.yaml", workdir / "path.yaml"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (workdir / "results/path-test/data/split.json").is_file()
