"""The study's settings (configs/study/) validate and plan side by side with the default: each is
its own experiment, with every method x rho x seed of the grid and the noise audit."""
import pytest

from test_paper_configs import user_snakemake
from workflow_helpers import ROOT, planned_jobs

STUDY = ROOT / "configs" / "study"


@pytest.mark.parametrize("setting,name", [("noisy-reference", "study-noise0.3-noisy-reference"),
                                          ("clean-reference", "study-noise0.3-clean-reference"),
                                          ("no-noise", "study-noise0")])
def test_study_setting_plans_its_own_experiment(setting, name):
    result = user_snakemake("--dry-run", "--configfile", ROOT / "config.yaml", STUDY / "common.yaml",
                            STUDY / f"{setting}.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = planned_jobs(result)
    # 3 seeds x (sft + 2 rho x (ignore, forget, random)) = 21 runs, each and the base on 2 tasks.
    assert jobs["train_final"] == 21 and jobs["evaluate"] == 22 * 2 and jobs["noise_audit"] == 1
    assert f"results/{name}/smollm2-135m-instruct/summary.md" in result.stdout
    assert "results/embedded/" not in result.stdout  # the default's experiment is not touched
