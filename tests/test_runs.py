"""The run grammar: one label per run and one run per label, for every value the schema accepts;
labels outside it refused with the allowed forms; the grid of a config."""
import random
import re

import pytest
import yaml

from conftest import ROOT
from workflow_scripts import runs

SCHEMA = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())


def schema_rhos():
    """Edge values of the schema's rho range and a seeded sample of floats inside it."""
    rng = random.Random(0)
    bounds = SCHEMA["properties"]["rho"]["items"]
    low = bounds["minimum"]
    return [low, 1e-5, 0.1 + 0.2, 0.7, 1 / 3, 0.5, 1.0, 2 ** -30, 1 - 2 ** -53] + \
        [rng.random() or 1.0 for _ in range(500)] + [10 ** rng.uniform(-12, 0) for _ in range(500)]


def every_kind_of_run(rho, seed=3):
    return [runs.Run("sft", seed), runs.Run("rho1", seed, rho),
            *[runs.Run("ignore", seed, rho, scope=s, score=c) for s in runs.SCOPES for c in runs.SCORES],
            *[runs.Run("forget", seed, rho, scope=s, score=c, forget_loss=loss, lambda_schedule=k,
                       beta=0.1 if loss == "npo" else None)
              for s in runs.SCOPES for c in runs.SCORES for loss in runs.FORGET_LOSSES for k in runs.LAMBDA_SCHEDULES],
            runs.Run("random", seed, rho, forget_loss="unlikelihood", lambda_schedule="cosine"),
            *[runs.Run("self_evolving", seed, rho, score=c, forget_loss="ascent", lambda_schedule="linear", rounds=12)
              for c in runs.LEARNT_SCORES],
            *[runs.Run(method, seed, rho, rule="band", tail=tail, score=c, **objective)
              for method, objective in (("ignore", {}), ("forget", {"forget_loss": "npo", "beta": rho * 7,
                                                                      "lambda_schedule": "constant"}))
              for tail in (1 - rho, (1 - rho) / 3) if tail > 0 for c in runs.SCORES],
            *[runs.Run("forget", seed, rule="threshold", threshold=t, score=c, forget_loss="unlikelihood",
                       lambda_schedule="linear") for t in (0.0, -rho, rho * 1e3, -2.5) for c in runs.SCORES],
            *[runs.Run("ignore", seed, rule="estimated_share", score=c) for c in runs.SCORES],
            *[runs.Run("forget", seed, rule="estimated_share", score=c, forget_loss="npo", beta=1.0,
                       lambda_schedule="linear") for c in runs.SCORES],
            runs.Run("random", seed, rho, forget_loss="npo", beta=1 / rho, lambda_schedule="linear")]


def test_rho_labels_are_positional_and_exact():
    assert [runs.rho_label(r) for r in (0.7, 1.0, 1e-05, 0.5, 0.1 + 0.2)] == \
        ["0.7", "1", "0.00001", "0.5", "0.30000000000000004"]
    for rho in schema_rhos():
        label = runs.rho_label(rho)
        assert float(label) == rho and "e" not in label and len(label) < 40
        assert re.fullmatch(runs.RHO_PATTERN, label)


@pytest.mark.parametrize("rho", schema_rhos()[:60])
def test_label_and_parse_round_trip(rho):
    for run in every_kind_of_run(rho):
        label = run.label
        assert runs.parse(label) == run
        assert re.fullmatch(runs.RUN_PATTERN, label), label
        assert runs.parse(label).label == label


def test_labels_of_the_paths_in_use():
    assert runs.Run("forget", 1, 0.7, scope="global", forget_loss="ascent", lambda_schedule="linear").label == \
        "forget/rho0.7-ascent-linear/seed1"
    assert runs.Run("random", 2, 0.5, forget_loss="ascent", lambda_schedule="linear").label == \
        "random/rho0.5-random-ascent-linear/seed2"
    assert runs.Run("self_evolving", 1, 1.0, forget_loss="ascent", lambda_schedule="linear", rounds=2).checkpoint == \
        "round2/model"
    assert runs.Run("random", 2, 0.5, forget_loss="ascent", lambda_schedule="linear").partition == "rho0.5-random/seed2"
    assert runs.Run("ignore", 2, 0.5, scope="per_example").partition == "rho0.5-per_example"
    # the paper's score is not written: its paths are the paths the paper's runs always had
    forget = runs.Run("forget", 1, 0.7, scope="global", forget_loss="ascent", lambda_schedule="linear")
    assert forget.score == "influence" and forget.partition == "rho0.7"
    scored = runs.Run("forget", 1, 0.7, scope="per_example", score="reference_loss", forget_loss="ascent",
                      lambda_schedule="linear")
    assert scored.label == "forget/rho0.7-per_example-reference_loss-ascent-linear/seed1"
    assert scored.partition == "rho0.7-per_example-reference_loss"
    assert runs.parse_partition(scored.partition) == {"rule": "top_rho", "rho": 0.7, "scope": "per_example",
                                                      "score": "reference_loss"}
    assert runs.parse_partition("rho0.5") == {"rule": "top_rho", "rho": 0.5, "scope": "global", "score": "influence"}
    assert runs.Run("self_evolving", 1, 0.5, score="base_loss", forget_loss="ascent", lambda_schedule="linear",
                    rounds=2).label == "self_evolving/rho0.5-base_loss-K2-ascent-linear/seed1"


@pytest.mark.parametrize("label,message", [
    ("sft/rho0.7-per_example/seed1", "'rho0.7-per_example' is not a variant of sft: sft variants read all"),
    ("ignore/rho0.7-ascent-linear/seed1", "ignore variants read {partition} ({partition} is "
     "rho{rho}[-{scope}][-{score}] or rho{rho}-tail{tail}[-{score}] or below{threshold}[-{score}] or "
     "estimated[-{score}])"),
    ("forget/rho0.7/seed1", "forget variants read {partition}-{objective} ({partition} is rho{rho}"),
    ("forget/rho0.7-npo-linear/seed1", "{objective} is {forget_loss}-{lambda_schedule} or npo{beta}-{lambda_schedule}"),
    ("forget/rho0.7-npo0-linear/seed1", "is not a variant of forget"),  # beta > 0
    ("ignore/below-0/seed1", "is not a variant of ignore"),  # -0 is written 0
    ("ignore/below0.50/seed1", "is not a variant of ignore"),  # not the canonical 0.5
    ("ignore/estimated0.1/seed1", "is not a variant of ignore"),  # the rule takes no number
    ("ignore/estimated-influence/seed1", "is not a variant of ignore"),  # the default score is unwritten
    ("ignore/estimated-loss/seed1", "is not a variant of ignore"),  # not a score
    ("ignore/estimated-per_example-reference_loss/seed1", "is not a variant of ignore"),  # the rule has no scope
    ("forget/estimated-reference_loss/seed1", "forget variants read {partition}-{objective}"),  # no objective
    ("forget/reference_loss-estimated-ascent-linear/seed1", "is not a variant of forget"),  # order
    ("ignore/rho0.7-tail0.1-per_example/seed1", "is not a variant of ignore"),  # a band is global
    ("self_evolving/rho0.5-oracle-K2-ascent-linear/seed1", "is not a variant of self_evolving"),  # no oracle rounds
    ("forget/rho0.70-ascent-linear/seed1", "is not a variant of forget"),  # not the canonical 0.7
    ("forget/rho1e-05-ascent-linear/seed1", "is not a variant of forget"),
    ("forget/rho0.7-influence-ascent-linear/seed1", "is not a variant of forget"),  # the default is unwritten
    ("forget/rho0.7-reference_loss-per_example-ascent-linear/seed1", "is not a variant of forget"),  # order
    ("random/rho0.7-random-base_loss-ascent-linear/seed1", "is not a variant of random"),  # random has no score
    ("ignore/rho0.7-perplexity/seed1", "ignore variants read {partition}"),
    ("rho1/rho1.5/seed1", "is not a variant of rho1"),
    ("rho1/rho0/seed1", "is not a variant of rho1"),
    ("sft/all/seed01", "is not a seed"),
    ("sft/all", "expected METHOD/VARIANT/seedN"),
    ("dpo/all/seed1", "unknown method 'dpo'"),
])
def test_labels_outside_the_grammar_are_refused(label, message):
    with pytest.raises(ValueError) as error:
        runs.parse(label)
    assert message in str(error.value)
    assert not re.fullmatch(runs.RUN_PATTERN, label)


def test_a_run_has_exactly_its_method_options():
    with pytest.raises(ValueError, match="sft has no option 'rho'"):
        runs.Run("sft", 1, 0.7)
    with pytest.raises(ValueError, match=r"forget \(rule top_rho\) needs option 'forget_loss'"):
        runs.Run("forget", 1, 0.7, scope="global")
    with pytest.raises(ValueError, match="rho must be in"):
        runs.Run("rho1", 1, 1.5)
    with pytest.raises(ValueError, match="random has no option 'score'"):
        runs.Run("random", 1, 0.7, score="base_loss", forget_loss="ascent", lambda_schedule="linear")
    with pytest.raises(ValueError, match="score 'perplexity' is not one of influence"):
        runs.Run("ignore", 1, 0.7, scope="global", score="perplexity")


def test_grid_expands_every_option():
    config = {"methods": ["sft", "ignore", "forget", "random", "rho1", "self_evolving"], "rho": [0.7, 1e-5],
              "seeds": [1, 2], "partition": {"scope": ["global", "per_example"], "score": "influence"},
              "forget": {"forget_loss": "ascent", "lambda_schedule": ["linear", "cosine"]},
              "self_evolving": {"rounds": 3}}
    grid = runs.grid(config)
    per_seed = 1 + 2 * (2 + 2 * 2 + 2 + 1 + 2)
    assert len(grid) == len({run.label for run in grid}) == 2 * per_seed
    assert "forget/rho0.00001-per_example-ascent-cosine/seed2" in {run.label for run in grid}
    assert runs.describe_grid(config, "ignore") == "rho0.00001, rho0.00001-per_example, rho0.7, rho0.7-per_example"


def schema_words(node: dict) -> list[list]:
    """Every word list of a schema node: its enum, a $ref's, and those of its oneOf branches and items."""
    if "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
    lists = [node["enum"]] if "enum" in node else []
    for child in [*node.get("oneOf", ()), *([node["items"]] if "items" in node else [])]:
        lists += schema_words(child)
    return lists


def test_the_schema_and_the_grammar_name_the_same_options():
    """The schema's words of each grammar option, as a value and in a list, are runs.py's; its
    defaults are the grammar's (the paper's choices, which a label leaves unwritten)."""
    properties = SCHEMA["properties"]
    assert schema_words(properties["methods"]) == [list(runs.METHODS)]
    for option, words in runs.CHOICES.items():
        section, key = runs.CONFIG_KEYS[option]
        node = properties[section]["properties"][key]
        assert schema_words(node) == [list(words)] * 2, option  # one value, or a list of them (a grid)
        if option in runs.DEFAULTS:
            assert node["default"] == runs.DEFAULTS[option], option
    partition = properties["partition"]["properties"]
    assert (partition["score"]["default"], partition["rule"]["default"]) == (runs.INFLUENCE, runs.TOP_RHO)
    # each list is written once in the schema, in its definitions: no other enum repeats a grammar word
    grammar = {word for words in [runs.METHODS, *runs.CHOICES.values()] for word in words}
    definitions = {name for name, node in SCHEMA["definitions"].items() if set(node.get("enum", ())) & grammar}
    assert definitions == {"method", *runs.CHOICES}

    def repeated(node, path):
        if isinstance(node, dict):
            if path[:1] != ("definitions",) and set(node.get("enum", ())) <= grammar and node.get("enum"):
                yield path
            for key, child in node.items():
                yield from repeated(child, (*path, key))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield from repeated(child, (*path, i))

    assert not list(repeated(SCHEMA, ())), "a grammar word list typed outside the schema's definitions"


def test_a_diverging_schema_is_caught():
    """The check above fails when the schema and the grammar disagree (a word added on one side)."""
    node = {"oneOf": [{"type": "string", "enum": [*runs.RULES, "median"]},
                      {"type": "array", "items": {"$ref": "#/definitions/rule"}}]}
    assert schema_words(node) != [list(runs.RULES)] * 2


def test_each_rule_names_the_numbers_it_needs_and_a_band_its_overlap():
    assert runs.RULE_NUMBERS == {"top_rho": ("rho",), "band": ("rho", "tail"), "threshold": ("threshold",),
                                 "estimated_share": ()}
    assert tuple(runs.RULE_NUMBERS) == runs.RULES
    assert runs.UNPARAMETERISED_LOSSES == ("ascent", "unlikelihood")
    assert runs.band_overlap(0.9, 0.1) is None and runs.band_overlap(0.7, 0.3) is None
    assert runs.band_overlap(0.9, 0.2) == "band: rho 0.9 and tail 0.2 overlap (rho + tail must be <= 1)"


def test_a_run_says_what_its_method_needs_and_where_its_files_lie():
    forget = runs.Run("forget", 1, 0.7, scope="global", forget_loss="ascent", lambda_schedule="linear")
    random_ = runs.Run("random", 2, 0.5, forget_loss="ascent", lambda_schedule="linear")
    rho1 = runs.Run("rho1", 1, 0.6)
    rounds = runs.Run("self_evolving", 1, 0.7, forget_loss="ascent", lambda_schedule="cosine", rounds=3)
    sft = runs.Run("sft", 4)
    needs = {run.method: (run.partition, run.uses_influence, run.reads_reference_losses, run.needs_reference_model,
                          run.has_forget_term, run.in_rounds) for run in (forget, random_, rho1, rounds, sft)}
    assert needs == {"forget": ("rho0.7", True, False, True, True, False),
                     "random": ("rho0.5-random/seed2", False, False, False, True, False),
                     "rho1": (None, False, True, True, False, False),
                     "self_evolving": (None, True, False, True, True, True),
                     "sft": (None, False, False, False, False, False)}
    assert (rounds.round_dir(2), rounds.checkpoint, rounds.training_log) == \
        ("round2", "round3/model", "round3/training_log.json")
    assert (forget.checkpoint, forget.training_log) == ("model", "training_log.json")
    with pytest.raises(ValueError, match="round 4 of a 3-round run"):
        rounds.round_dir(4)
    with pytest.raises(ValueError, match="forget is not trained in rounds"):
        forget.round_dir(1)
    assert rho1.objective == {"keep": 0.6, "forget_loss": None, "beta": None, "lambda_schedule": None}
    assert random_.objective == {"keep": None, "forget_loss": "ascent", "beta": None, "lambda_schedule": "linear"}
    assert runs.experiment_dir({"data": {"name": "d"}, "model": {"name": "m"}}) == "results/d/m"


def test_the_grid_crosses_the_scores():
    config = {"methods": ["ignore", "forget", "random", "self_evolving"], "rho": [0.7], "seeds": [1],
              "partition": {"scope": "global", "score": ["influence", "relative_influence"]},
              "forget": {"forget_loss": "ascent", "lambda_schedule": "linear"}, "self_evolving": {"rounds": 2}}
    labels = [run.label for run in runs.grid(config)]
    assert labels == ["ignore/rho0.7/seed1", "ignore/rho0.7-relative_influence/seed1",
                      "forget/rho0.7-ascent-linear/seed1", "forget/rho0.7-relative_influence-ascent-linear/seed1",
                      "random/rho0.7-random-ascent-linear/seed1",  # one random control: it ranks by no score
                      "self_evolving/rho0.7-K2-ascent-linear/seed1",
                      "self_evolving/rho0.7-relative_influence-K2-ascent-linear/seed1"]
    assert {run.partition for run in runs.grid(config)} == {"rho0.7", "rho0.7-relative_influence",
                                                           "rho0.7-random/seed1", None}


def test_the_grid_crosses_the_rules_and_the_forget_losses():
    """A rule or forget loss listed in the config is one more alternative of its part; its own
    options come from the config, and options of rules not listed are never read."""
    config = {"methods": ["ignore", "forget", "random"], "rho": [0.7, 0.85], "seeds": [2],
              "partition": {"scope": "global", "score": ["influence", "oracle"],
                            "rule": ["top_rho", "band", "threshold", "estimated_share"], "tail": 0.1,
                            "threshold": [0, -1.5]},
              "forget": {"forget_loss": ["ascent", "npo"], "npo_beta": [1, 0.5], "lambda_schedule": "linear"}}
    labels = [run.label for run in runs.grid(config) if run.method == "ignore"]
    assert labels == ["ignore/rho0.7/seed2", "ignore/rho0.7-oracle/seed2", "ignore/rho0.85/seed2",
                      "ignore/rho0.85-oracle/seed2", "ignore/rho0.7-tail0.1/seed2",
                      "ignore/rho0.7-tail0.1-oracle/seed2",
                      "ignore/rho0.85-tail0.1/seed2", "ignore/rho0.85-tail0.1-oracle/seed2", "ignore/below0/seed2",
                      "ignore/below0-oracle/seed2", "ignore/below-1.5/seed2", "ignore/below-1.5-oracle/seed2",
                      "ignore/estimated/seed2", "ignore/estimated-oracle/seed2"]
    forget = [run for run in runs.grid(config) if run.method == "forget"]
    assert len(forget) == 14 * 3  # ascent, npo1, npo0.5
    assert {run.variant for run in forget if run.rule == "threshold" and run.threshold == 0 and
            run.score == "influence"} == {"below0-ascent-linear", "below0-npo1-linear", "below0-npo0.5-linear"}
    assert all(run.reads_base_losses == (run.forget_loss == "npo") for run in forget)
    assert [run.label for run in runs.grid(config) if run.method == "random"] == [
        "random/rho0.7-random-ascent-linear/seed2", "random/rho0.85-random-ascent-linear/seed2",
        "random/rho0.7-random-npo1-linear/seed2", "random/rho0.7-random-npo0.5-linear/seed2",
        "random/rho0.85-random-npo1-linear/seed2", "random/rho0.85-random-npo0.5-linear/seed2"]
    # a band that overlaps the top rho is refused when the grid is made
    with pytest.raises(ValueError, match="rho 0.95 and tail 0.1 overlap"):
        runs.grid({**config, "rho": [0.95]})


def test_the_estimated_share_on_a_score_without_a_zero_is_a_cell():
    """reference_loss has no meaningful zero; the estimated share reads its high-loss end instead
    (noise_share.py), so the rule takes it like any score: label, parse and grid."""
    label = "forget/estimated-reference_loss-npo1-linear/seed3"
    run = runs.parse(label)
    assert (run.rule, run.score, run.forget_loss, run.beta, run.rho, run.scope) == \
        ("estimated_share", "reference_loss", "npo", 1.0, None, None)
    assert run.label == label and run.partition == "estimated-reference_loss"
    assert runs.partition_label(rule="estimated_share", score="reference_loss") == "estimated-reference_loss"
    assert runs.parse_partition("estimated-reference_loss") == {"rule": "estimated_share", "score": "reference_loss"}
    assert runs.partition_label(**runs.parse_partition("estimated-reference_loss")) == "estimated-reference_loss"
    config = {"methods": ["ignore"], "rho": [0.7], "seeds": [1],
              "partition": {"rule": "estimated_share", "score": ["influence", "reference_loss", "relative_influence"]}}
    assert [r.label for r in runs.grid(config)] == ["ignore/estimated/seed1", "ignore/estimated-reference_loss/seed1",
                                                    "ignore/estimated-relative_influence/seed1"]
    assert "reference_loss" not in runs.SIGNED_SCORES and "relative_influence" in runs.SIGNED_SCORES


def test_partition_labels_of_every_rule():
    assert runs.partition_label(rule="threshold", threshold=0.0) == "below0"
    assert runs.partition_label(rule="threshold", threshold=-0.0, score="oracle") == "below0-oracle"
    assert runs.partition_label(0.7, rule="band", tail=0.1) == "rho0.7-tail0.1"
    assert runs.partition_label(rule="estimated_share", score="relative_influence") == "estimated-relative_influence"
    assert runs.parse_partition("below-2.5-base_loss") == {"rule": "threshold", "threshold": -2.5, "score": "base_loss"}
    assert runs.parse_partition("estimated") == {"rule": "estimated_share", "score": "influence"}
    assert all(re.fullmatch(runs.PARTITION_PATTERN, label) for label in
               ("rho0.7", "rho0.7-tail0.3-oracle", "below-1", "estimated-oracle", "rho1-per_example-base_loss",
                "estimated-reference_loss", "estimated-base_loss"))
    assert not any(re.fullmatch(runs.PARTITION_PATTERN, label) for label in
                   ("rho0.7-random", "below", "estimated-influence", "estimated-per_example", "rho0.7-tail0"))
    with pytest.raises(ValueError, match="ignore \\(rule threshold\\) has no option 'rho'"):
        runs.partition_label(0.7, rule="threshold", threshold=0.0)
    with pytest.raises(ValueError, match="'below0.0' is not a partition label"):
        runs.parse_partition("below0.0")
