"""The noise audit: AUROC of the influence score against the corrupted tokens, the partitions'
precision and recall, answer-token filtering, the no-noise case and refused inputs."""
import json
import subprocess
import sys
from itertools import product

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import pytest

from conftest import ROOT
from workflow_scripts.files import InputError
from workflow_scripts.noise_audit import (answer_mask, auroc, main, parse_partition_specs, partition_scores, roc_curve,
                                         run)
from workflow_scripts.partition import partition

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def flags(text: str) -> np.ndarray:
    return np.array([c == "T" for c in text])


# ---------------------------------------------------------------- AUROC

def test_auroc_with_ties_by_hand():
    # corrupted {0, 1} vs clean {1, 2}: 0<1, 0<2, 1=1 (half), 1<2 -> 3.5 of 4 pairs
    assert auroc(np.array([0.0, 1.0, 1.0, 2.0]), flags("TFTF")) == 0.875
    # corrupted {1, 2} vs clean {3, 2, 0}: 1<3, 1<2, 2<3, 2=2 (half) -> 3.5 of 6 pairs
    assert auroc(np.array([3.0, 1.0, 2.0, 2.0, 0.0]), flags("FTTFF")) == pytest.approx(7 / 12, abs=1e-15)


def test_auroc_extremes():
    assert auroc(np.array([5.0, 5.0, 5.0, 5.0]), flags("TFFT")) == 0.5  # all tied
    assert auroc(np.array([0.0, 1.0, 2.0, 3.0]), flags("TTFF")) == 1.0  # corrupted lowest: perfect
    assert auroc(np.array([0.0, 1.0, 2.0, 3.0]), flags("FFTT")) == 0.0  # corrupted highest: inverted
    assert auroc(np.array([1.0, 2.0]), flags("FF")) is None  # no corrupted token
    assert auroc(np.array([1.0, 2.0]), flags("TT")) is None  # no clean token


def test_auroc_equals_the_pair_count_on_tied_data():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 5, size=60).astype(float)  # many ties
    corrupted = rng.random(60) < 0.3
    below = [float(c < k) + 0.5 * float(c == k) for c, k in product(values[corrupted], values[~corrupted])]
    assert auroc(values, corrupted) == pytest.approx(np.mean(below), abs=1e-12)


# ---------------------------------------------------------------- partitions

def test_partition_precision_and_recall_by_hand():
    negative, corrupted = flags("TTFFTF"), flags("TFFTTT")
    # negatives {0, 1, 4}; corrupted {0, 3, 4, 5}; both {0, 4}
    assert partition_scores(negative, corrupted) == {
        "n_tokens": 6, "n_negative": 3, "n_corrupted": 4, "n_corrupted_negative": 2,
        "negative_share": 0.5, "precision": 2 / 3, "recall": 0.5,
        "chance_precision": 4 / 6, "chance_recall": 0.5}


def test_partition_scores_without_corruption_are_null():
    scores = partition_scores(flags("TFF"), flags("FFF"))
    assert scores["precision"] is None and scores["recall"] is None and scores["chance_precision"] is None
    assert scores["n_negative"] == 1 and scores["negative_share"] == 1 / 3


def test_partition_specs():
    assert parse_partition_specs(["rho0.7=a/p.parquet", "rho0.7-random/seed1=b=c.parquet"]) == {
        "rho0.7": "a/p.parquet", "rho0.7-random/seed1": "b=c.parquet"}
    with pytest.raises(InputError, match="expected LABEL=PATH"):
        parse_partition_specs(["a/p.parquet"])
    with pytest.raises(InputError, match="label 'x' given twice"):
        parse_partition_specs(["x=a", "x=b"])


# ---------------------------------------------------------------- answer tokens

@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class CountingTokenizer:
    """Delegates to a tokenizer and records which ids were decoded."""

    def __init__(self, tokenizer):
        self.tokenizer, self.decoded = tokenizer, []

    def batch_decode(self, sequences, **kwargs):
        self.decoded.extend(sequences)
        return self.tokenizer.batch_decode(sequences, **kwargs)

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_answer_tokens_exclude_special_and_whitespace_tokens(tokenizer):
    ids = ids_of(tokenizer, "7 fruits.</s>\n") + ids_of(tokenizer, " yes\n\n no</s>") + [tokenizer.bos_token_id,
                                                                                       tokenizer.pad_token_id]
    assert [tokenizer.decode([i]) for i in ids] == ["7", " fruits", ".", "</s>", "\n", " yes", "\n", "\n", " no",
                                                    "</s>", "<s>", "<pad>"]
    counting = CountingTokenizer(tokenizer)
    mask = answer_mask(np.array(ids, dtype=np.int32), counting)
    assert mask.tolist() == [True, True, True, False, False, True, False, False, True, False, False, False]
    # every distinct id decoded once, none per token
    assert sorted(i for [i] in counting.decoded) == sorted(set(ids))


# ---------------------------------------------------------------- the audit end to end

# example, position, token, loss_base, loss_ref, corrupted; influence = loss_base - loss_ref
TOKENS = [("e1", 5, "7", 2.5, 2.0, True), ("e1", 6, " fruits", 3.0, 1.0, False), ("e1", 7, ".", 1.5, 0.5, False),
          ("e1", 8, "</s>", 0.5, 0.25, False), ("e2", 3, "yes", 1.0, 2.0, True), ("e2", 4, "</s>", 4.0, 1.0, False),
          ("e2", 5, "\n", 1.0, 0.5, False)]


def influence_table(tokenizer, with_corrupted=True, corrupted=None):
    def token_id(text):
        [i] = ids_of(tokenizer, text)
        return i

    base = pa.array([t[3] for t in TOKENS], pa.float32())
    ref = pa.array([t[4] for t in TOKENS], pa.float32())
    columns = {"example_id": [t[0] for t in TOKENS], "position": pa.array([t[1] for t in TOKENS], pa.int32()),
               "token_id": pa.array([token_id(t[2]) for t in TOKENS], pa.int32()),
               "loss_base": base, "loss_ref": ref, "influence": pa.compute.subtract(base, ref)}
    if with_corrupted:
        columns["corrupted"] = corrupted if corrupted is not None else [t[5] for t in TOKENS]
    return pa.table(columns)


def write_partition(path, table, positive):
    """A partition file as partition.py writes it: every token positive or negative."""
    negative = pa.compute.invert(pa.array(positive, pa.bool_()))
    pq.write_table(pa.table({"example_id": table["example_id"], "position": table["position"],
                             "positive": positive, "negative": negative}), path)
    return str(path)


def test_roc_curve_by_hand():
    # scores 0, 1, 1, 2 with corrupted T F T F: thresholds 0 (1 TP), 1 (+1 TP +1 FP, a tie), 2 (+1 FP)
    fpr, tpr = roc_curve(np.array([0.0, 1.0, 1.0, 2.0]), flags("TFTF"))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    # the area under it is the AUROC, ties counted half
    assert np.trapezoid(tpr, fpr) == auroc(np.array([0.0, 1.0, 1.0, 2.0]), flags("TFTF")) == 0.875


def test_audit_by_hand(tmp_path, tiny_model_dir, tokenizer):
    table = influence_table(tokenizer)
    pq.write_table(table, tmp_path / "influence.parquet")
    # influence 0.5, 2, 1, 0.25, -1, 3, 0.5; rho 0.7 of 7 tokens: 5 positive, the 0.5 tie broken by
    # order -> negatives are tokens 3 and 4
    global_part, _ = partition(table, 0.7)
    pq.write_table(global_part, tmp_path / "global.parquet")
    random_path = write_partition(tmp_path / "random.parquet", table, [False, True, True, True, False, True, False])
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": "e1", "source": "asdiv"}\n{"id": "e2", "source": "boolq"}\n')
    main(["--influence", str(tmp_path / "influence.parquet"), "--model-dir", str(tiny_model_dir), "--data", str(data),
          "--labelled-partition", f"rho0.7={tmp_path / 'global.parquet'}", f"rho0.7-random/seed1={random_path}",
          "--out-json", str(tmp_path / "audit.json"), "--out-figure", str(tmp_path / "audit.png")])
    result = json.loads((tmp_path / "audit.json").read_text())
    assert list(result["strata"]) == ["all", "asdiv", "boolq"]
    pooled = result["strata"]["all"]["response"]
    assert (pooled["n_tokens"], pooled["n_corrupted"], pooled["corrupted_share"]) == (7, 2, 2 / 7)
    # influence: corrupted {0.5, -1} vs clean {2, 1, 0.25, 3, 0.5}: 0.5 beats 3 of 5 and ties 1, -1 beats all 5
    # reference_loss (-ref): corrupted {-2, -2} vs clean {-1, -0.5, -0.25, -1, -0.5}: all 10 pairs below
    # relative: corrupted {0.2, -1} vs clean {2/3, 2/3, 0.5, 0.75, 0.5}: 10 of 10
    # base_loss (-base): corrupted {-2.5, -1} vs clean {-3, -1.5, -0.5, -4, -1}: -2.5 beats 3, -1 beats 1 ties 1
    assert pooled["auroc"] == {"influence": 8.5 / 10, "reference_loss": 1.0, "relative_influence": 1.0,
                               "base_loss": 4.5 / 10}
    assert pooled["mean_corrupted"]["influence"] == -0.25
    assert pooled["mean_clean"]["influence"] == pytest.approx(6.75 / 5)
    # answer tokens drop the two </s> and the newline: corrupted {0.5, -1} vs clean {2, 1}
    answer = result["strata"]["all"]["answer"]
    assert (answer["n_tokens"], answer["n_corrupted"], answer["auroc"]["influence"]) == (4, 2, 1.0)
    # per stratum: asdiv's answer tokens are 7 (corrupted, 0.5), " fruits" (2), "." (1); boolq's only "yes"
    assert result["strata"]["asdiv"]["answer"]["auroc"]["influence"] == 1.0
    assert result["strata"]["asdiv"]["response"]["n_tokens"] == 4
    assert result["strata"]["boolq"]["answer"]["auroc"]["influence"] is None  # no clean token
    assert result["partitions"]["rho0.7"]["all"] == {
        "n_tokens": 7, "n_negative": 2, "n_corrupted": 2, "n_corrupted_negative": 1, "negative_share": 2 / 7,
        "precision": 0.5, "recall": 0.5, "chance_precision": 2 / 7, "chance_recall": 2 / 7}
    # negatives are tokens 3 (asdiv, clean) and 4 (boolq, corrupted)
    assert result["partitions"]["rho0.7"]["asdiv"]["precision"] == 0.0
    assert result["partitions"]["rho0.7"]["boolq"]["precision"] == 1.0
    random_scores = result["partitions"]["rho0.7-random/seed1"]["all"]
    assert (random_scores["n_negative"], random_scores["n_corrupted_negative"]) == (3, 2)
    assert (random_scores["precision"], random_scores["recall"]) == (2 / 3, 1.0)
    assert result["note"] is None and result["influence"] == str(tmp_path / "influence.parquet")
    assert result["partition_paths"]["rho0.7"] == str(tmp_path / "global.parquet")
    assert (tmp_path / "audit.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json", "audit.png", "global.parquet",
                                                          "influence.parquet", "random.parquet", "train.jsonl"]


def test_one_source_is_one_stratum(tmp_path, tokenizer):
    table = influence_table(tokenizer)
    pq.write_table(table, tmp_path / "influence.parquet")
    data = tmp_path / "train.jsonl"
    data.write_text('{"id": "e1", "source": "user"}\n{"id": "e2", "source": "user"}\n')
    result = run(str(tmp_path / "influence.parquet"), "unused", {}, str(tmp_path / "a.json"), str(tmp_path / "a.png"),
                 str(data), tokenizer=tokenizer)
    assert list(result["strata"]) == ["all"]


@pytest.mark.parametrize("with_corrupted, why", [(False, "no `corrupted` column"),
                                                 (True, "the `corrupted` column is all false")])
def test_no_corruption_is_reported_not_failed(tmp_path, tokenizer, with_corrupted, why):
    table = influence_table(tokenizer, with_corrupted, corrupted=[False] * len(TOKENS))
    pq.write_table(table, tmp_path / "influence.parquet")
    part = write_partition(tmp_path / "part.parquet", table, [True] * 5 + [False] * 2)
    result = run(str(tmp_path / "influence.parquet"), "unused", {"rho0.7": part}, str(tmp_path / "audit.json"),
                 str(tmp_path / "audit.png"), tokenizer=tokenizer)
    assert json.loads((tmp_path / "audit.json").read_text()) == result
    assert result["note"].startswith(f"no corrupted tokens recorded ({why})")
    pooled = result["strata"]["all"]
    assert pooled["response"]["n_corrupted"] == 0 and set(pooled["response"]["auroc"].values()) == {None}
    assert pooled["response"]["mean_corrupted"]["influence"] is None
    assert pooled["answer"]["n_tokens"] == 4 and pooled["answer"]["auroc"]["influence"] is None
    scores = result["partitions"]["rho0.7"]["all"]
    assert (scores["precision"], scores["recall"], scores["n_negative"]) == (None, None, 2)
    png = (tmp_path / "audit.png").read_bytes()
    assert png[:8] == PNG_MAGIC

    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "audit.png").shape[2] in (3, 4)


def test_a_partition_of_other_tokens_is_refused(tmp_path, tokenizer):
    table = influence_table(tokenizer)
    pq.write_table(table, tmp_path / "influence.parquet")
    moved = pa.table({"example_id": table["example_id"],
                      "position": pa.array([5, 6, 9, 8, 3, 4, 5], pa.int32()), "positive": [True] * 7,
                      "negative": [False] * 7})
    pq.write_table(moved, tmp_path / "moved.parquet")
    pq.write_table(moved.slice(0, 6), tmp_path / "short.parquet")
    common = (str(tmp_path / "influence.parquet"), "unused")
    outputs = (str(tmp_path / "audit.json"), str(tmp_path / "audit.png"))
    with pytest.raises(InputError, match=r"moved.parquet \(partition 'p'.*column 'position' differs .* at token 2 "
                                         r"\(example e1, position 9\)"):
        run(*common, {"p": str(tmp_path / "moved.parquet")}, *outputs, tokenizer=tokenizer)
    with pytest.raises(InputError, match=r"short.parquet \(partition 'q'.*: 6 tokens, expected 7"):
        run(*common, {"q": str(tmp_path / "short.parquet")}, *outputs, tokenizer=tokenizer)
    pq.write_table(moved.drop_columns(["positive", "negative"]), tmp_path / "keys.parquet")
    with pytest.raises(InputError, match=r"keys.parquet: partition 'k' is missing column.s. positive"):
        run(*common, {"k": str(tmp_path / "keys.parquet")}, *outputs, tokenizer=tokenizer)
    # a partition without its negatives is refused, not read as "every token not positive"
    pq.write_table(table.select(["example_id", "position"]).append_column("positive", pa.array([True] * 7)),
                   tmp_path / "positive-only.parquet")
    with pytest.raises(InputError, match=r"positive-only.parquet: partition 'n' is missing column.s. negative"):
        run(*common, {"n": str(tmp_path / "positive-only.parquet")}, *outputs, tokenizer=tokenizer)
    assert not (tmp_path / "audit.json").exists() and not (tmp_path / "audit.png").exists()


def test_bad_influence_tables_are_refused(tmp_path, tokenizer):
    table = influence_table(tokenizer)
    pq.write_table(table.drop_columns(["influence"]), tmp_path / "noinf.parquet")
    with pytest.raises(InputError, match="noinf.parquet: not an influence table, missing column.s. influence"):
        run(str(tmp_path / "noinf.parquet"), "unused", {}, "x.json", "x.png", tokenizer=tokenizer)
    values = table["loss_ref"].to_numpy().copy()
    values[2] = np.nan
    pq.write_table(table.set_column(4, "loss_ref", pa.array(values)), tmp_path / "nan.parquet")
    with pytest.raises(InputError, match=r"nan.parquet: 1 non-finite loss_ref values \(first at token 2, "
                                         r"example e1, position 7\)"):
        run(str(tmp_path / "nan.parquet"), "unused", {}, "x.json", "x.png", tokenizer=tokenizer)


def test_command_line():
    help_text = subprocess.run([sys.executable, "-m", "workflow_scripts.noise_audit", "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    assert "--labelled-partition [LABEL=PATH ...]" in help_text and "--out-figure" in help_text
    bad = subprocess.run([sys.executable, "-m", "workflow_scripts.noise_audit", "--influence", "missing.parquet",
                          "--model-dir", "none", "--out-json", "x.json", "--out-figure", "x.png"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "error: missing.parquet: cannot read Parquet table" in bad.stderr
