"""The study's settings (configs/study/) validate and plan side by side with the default: each is
its own experiment, with every method x rho x seed of the grid and the noise audit."""
import pytest

from conftest import ROOT, planned_jobs, user_snakemake

STUDY = ROOT / "configs" / "study"


# setting, experiment, runs: 3 seeds x (sft + rho values x the methods that use rho).
@pytest.mark.parametrize("setting,name,trainings", [("noisy-reference", "study-noise0.3-noisy-reference", 3 * (1 + 3)),
                                                    ("clean-reference", "study-noise0.3-clean-reference", 3 * (1 + 2)),
                                                    ("no-noise", "study-noise0", 3 * (1 + 1))])
def test_study_setting_plans_its_own_experiment(setting, name, trainings):
    # --forceall: the whole plan, whether or not `make study` has run in this checkout.
    result = user_snakemake("--dry-run", "--forceall", "--printshellcmds", "--configfile", ROOT / "config.yaml",
                            ROOT / "configs" / "boolq-asdiv.yaml", STUDY / "common.yaml", STUDY / f"{setting}.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    # Each run and the base model on the two tasks.
    assert jobs["train_final"] == trainings and jobs["evaluate"] == (trainings + 1) * 2 and jobs["noise_audit"] == 1
    assert f"results/{name}/smollm2-135m-instruct/summary.md" in result.stdout
    assert "results/embedded/" not in result.stdout  # the default's experiment is not touched
    # Both tasks scored in the chat template; boolq_short reads boolq's eval set.
    evaluations = [line for line in result.stdout.splitlines() if "workflow_scripts.evaluate" in line]
    assert len(evaluations) == (trainings + 1) * 2 and all("--chat-template" in line for line in evaluations)
    assert sum(f"--task boolq_short --data results/{name}/data/eval/boolq.jsonl " in line
               for line in evaluations) == trainings + 1


NUMBER_WORDS = ROOT / "configs" / "number-words-study"


@pytest.mark.parametrize("setting", ["noise0.3", "noise0"])
def test_the_number_words_study_plans_its_methods_and_seeds(setting):
    result = user_snakemake("--dry-run", "--forceall", "--printshellcmds", "--configfile", ROOT / "config.yaml",
                            NUMBER_WORDS / "common.yaml", NUMBER_WORDS / f"{setting}.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    # 5 seeds x (sft, ignore, forget) = 15 runs; the base model and them on number_words
    assert jobs["train_final"] == 15 and jobs["evaluate"] == 16 and jobs["partition"] == 1
    name = f"number-words-{setting}"
    assert f"results/{name}/smollm2-135m-instruct/forget/rho0.7-ascent-linear/seed5/model" in result.stdout
    assert "--pool number_words" in result.stdout and "--task number_words" in result.stdout
    assert all("--limit 400" in line for line in result.stdout.splitlines() if "workflow_scripts.evaluate" in line)
    assert "results/embedded/" not in result.stdout and "results/number-words/" not in result.stdout


def test_the_fuller_number_words_design_plans_both_scores(tmp_path):
    """The design the study's comment describes: random and partitions by reference_loss too."""
    fuller = tmp_path / "fuller.yaml"
    fuller.write_text("methods: [sft, ignore, forget, random]\npartition: {score: [influence, reference_loss]}\n")
    result = user_snakemake("--dry-run", "--forceall", "--configfile", ROOT / "config.yaml",
                            NUMBER_WORDS / "common.yaml", NUMBER_WORDS / "noise0.3.yaml", fuller)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # 5 seeds x (sft + random + ignore and forget by 2 scores) = 30 runs
    assert planned_jobs(result)["train_final"] == 30 and planned_jobs(result)["partition"] == 2
