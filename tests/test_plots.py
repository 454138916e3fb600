"""plots.scores_figure: one panel per task score, and the mean beside them only when there are several."""
import pandas as pd
import pytest

from workflow_scripts import plots


def by_method(*metrics):
    frame = pd.DataFrame({"method": ["base", "sft"], "variant": ["", "all"], "seeds": [1, 1]})
    for metric in metrics:
        frame[metric], frame[f"{metric}_ci95"], frame[f"{metric}_items_ci95"] = [0.1, 0.9], [0.0, 0.0], [0.02, 0.04]
    return frame


@pytest.mark.parametrize("metrics,titles", [
    (["number_words_acc", "mean"], ["number_words_acc"]),
    (["number_words_acc", "asdiv_acc", "mean"], ["number_words_acc", "asdiv_acc", "mean"]),
])
def test_the_mean_is_drawn_only_beside_several_tasks(metrics, titles):
    figure = plots.scores_figure(by_method(*metrics))
    assert [ax.get_title() for ax in figure.axes] == titles
    assert figure.axes[0].get_ylabel() == "score (95% interval over items)"
