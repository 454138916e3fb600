"""The run grammar: what a trained checkpoint is, and how its path names it.

A run is one method with its options and a seed; its label is the path component
`{method}/{variant}/seed{seed}` under `results/{data}/{model}/`. The variant carries exactly the
options that make the method's runs different, so one label names one run and one run has one
label:

    sft            all
    ignore         rho{rho}[-per_example][-{score}]
    forget         rho{rho}[-per_example][-{score}]-{forget_loss}-{lambda_schedule}
    random         rho{rho}-random-{forget_loss}-{lambda_schedule}
    rho1           rho{rho}
    self_evolving  rho{rho}[-{score}]-K{rounds}-{forget_loss}-{lambda_schedule}

`score` is the token score the partition ranks by (workflow_scripts/token_scores.py), written only
when it is not the paper's influence, so the paper's runs keep their paths. `rho` is written in positional notation with the fewest digits that read back to the same float
(0.7, 1, 0.00001), so `parse(label(run)) == run` for every value the config schema accepts and
`label(parse(text)) == text` for every text that parses. The Snakefile, the summary, the plots and
the tests read and write labels only through this module, and ask a run what its method needs
(a partition, the reference losses, rounds) and where its files lie; it imports nothing beyond the
standard library, so the Snakefile can use it at planning time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

METHODS = ("sft", "ignore", "forget", "random", "rho1", "self_evolving")
SFT, IGNORE, FORGET, RANDOM, RHO1, SELF_EVOLVING = METHODS
SCOPES = ("global", "per_example")
# Token scores a partition ranks by (formulas: token_scores.py); the first is the paper's.
SCORES = ("influence", "reference_loss", "relative_influence", "base_loss")
INFLUENCE = SCORES[0]
FORGET_LOSSES = ("ascent", "unlikelihood")
LAMBDA_SCHEDULES = ("linear", "constant", "cosine")

# What each method needs besides the base model and the tokenized training data. sft is plain
# SFT: the reference model's objective and the baseline every method is compared with.
# Methods whose objective has a negative (forget) term, and so forget options in their variant.
FORGET_FAMILY = (FORGET, RANDOM, SELF_EVOLVING)
# Methods that read the influence partition (and so need the reference model and both loss tables).
USES_INFLUENCE = (IGNORE, FORGET, SELF_EVOLVING)
# Methods that train with a partition file of the grid (random: its own, drawn with the run's seed).
PARTITIONED = (IGNORE, FORGET, RANDOM)
# Rho-1: each batch's tokens selected by excess loss over the reference losses (no partition).
SELECTIVE = (RHO1,)
# Methods trained in rounds, each round a job of its own; the others are one `train_final` job.
IN_ROUNDS = (SELF_EVOLVING,)

_RHO = r"(?:0\.[0-9]*[1-9]|1)"  # canonical: no trailing zeros, no exponent, no leading '+'
_SEED = r"(?:0|[1-9][0-9]*)"
_ROUNDS = r"[1-9][0-9]*"
_OBJECTIVE = rf"-(?P<forget_loss>{'|'.join(FORGET_LOSSES)})-(?P<lambda_schedule>{'|'.join(LAMBDA_SCHEDULES)})"
_SCOPE = rf"(?:-(?P<scope>{'|'.join(s for s in SCOPES if s != 'global')}))?"
_SCORE = rf"(?:-(?P<score>{'|'.join(s for s in SCORES if s != INFLUENCE)}))?"

# One anchored pattern per method's variant, built from the constants above.
VARIANT_PATTERNS = {
    "sft": r"all",
    "ignore": rf"rho(?P<rho>{_RHO}){_SCOPE}{_SCORE}",
    "forget": rf"rho(?P<rho>{_RHO}){_SCOPE}{_SCORE}{_OBJECTIVE}",
    "random": rf"rho(?P<rho>{_RHO})-random{_OBJECTIVE}",
    "rho1": rf"rho(?P<rho>{_RHO})",
    "self_evolving": rf"rho(?P<rho>{_RHO}){_SCORE}-K(?P<rounds>{_ROUNDS}){_OBJECTIVE}",
}
# What a person reads in an error message.
VARIANT_FORMS = {
    "sft": "all",
    "ignore": "rho{rho}[-per_example][-{score}]",
    "forget": "rho{rho}[-per_example][-{score}]-{forget_loss}-{lambda_schedule}",
    "random": "rho{rho}-random-{forget_loss}-{lambda_schedule}",
    "rho1": "rho{rho}",
    "self_evolving": "rho{rho}[-{score}]-K{rounds}-{forget_loss}-{lambda_schedule}",
}
# The whole label `{method}/{variant}/seed{seed}`, to tell a label from other text (tests).
RUN_PATTERN = "|".join(f"{method}/{_unnamed}/seed{_SEED}" for method, _unnamed in
                       ((m, re.sub(r"\(\?P<\w+>", "(?:", p)) for m, p in VARIANT_PATTERNS.items()))
PARTITION_PATTERN = rf"rho{_RHO}(?:-per_example)?" + re.sub(r"\(\?P<\w+>", "(?:", _SCORE)
SEED_PATTERN = _SEED
RHO_PATTERN = _RHO
# Folders below an experiment or a run, as format strings whose fields are the rules' wildcards.
RANDOM_PARTITION_DIR = "rho{rho}-random/seed{seed}"
ROUND_DIR = "round{round}"


def rho_label(rho: float) -> str:
    """0.7 -> '0.7', 1.0 -> '1', 1e-05 -> '0.00001': positional, shortest exact round trip."""
    rho = float(rho)
    if not 0 < rho <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    text = format(Decimal(repr(rho)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Run:
    """One trained checkpoint of the grid. Options a method does not have are None."""
    method: str
    seed: int
    rho: float | None = None
    scope: str | None = None  # global | per_example (ignore, forget)
    score: str | None = None  # the partition's token score (methods that use influence; default: influence)
    forget_loss: str | None = None  # ascent | unlikelihood (forget family)
    lambda_schedule: str | None = None  # linear | constant | cosine (forget family)
    rounds: int | None = None  # self_evolving

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; methods are {', '.join(METHODS)}")
        if self.method in USES_INFLUENCE and self.score is None:
            object.__setattr__(self, "score", INFLUENCE)
        wanted = {
            "rho": self.method != SFT,
            "scope": self.method in (IGNORE, FORGET),
            "score": self.method in USES_INFLUENCE,
            "forget_loss": self.method in FORGET_FAMILY,
            "lambda_schedule": self.method in FORGET_FAMILY,
            "rounds": self.method in IN_ROUNDS,
        }
        for option, needed in wanted.items():
            if needed != (getattr(self, option) is not None):
                raise ValueError(f"{self.method} {'needs' if needed else 'has no'} option {option!r}: {self!r}")
        choices = {"scope": SCOPES, "score": SCORES, "forget_loss": FORGET_LOSSES, "lambda_schedule": LAMBDA_SCHEDULES}
        for option, allowed in choices.items():
            value = getattr(self, option)
            if value is not None and value not in allowed:
                raise ValueError(f"{option} {value!r} is not one of {', '.join(allowed)}")
        if self.rho is not None:
            rho_label(self.rho)  # range check
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    @property
    def variant(self) -> str:
        if self.method == SFT:
            return "all"
        text = f"rho{rho_label(self.rho)}"
        if self.scope == "per_example":
            text += "-per_example"
        if self.score not in (None, INFLUENCE):
            text += f"-{self.score}"
        if self.method == RANDOM:
            text += "-random"
        if self.rounds is not None:
            text += f"-K{self.rounds}"
        if self.forget_loss is not None:
            text += f"-{self.forget_loss}-{self.lambda_schedule}"
        return text

    @property
    def label(self) -> str:
        return f"{self.method}/{self.variant}/seed{self.seed}"

    @property
    def partition(self) -> str | None:
        """The label of the partition file this run trains with (None: it reads none)."""
        if self.method == RANDOM:
            return random_partition_label(self.rho, self.seed)
        if self.method in PARTITIONED:
            return partition_label(self.rho, self.scope, self.score)
        return None

    @property
    def uses_influence(self) -> bool:
        return self.method in USES_INFLUENCE

    @property
    def reads_reference_losses(self) -> bool:
        return self.method in SELECTIVE

    @property
    def needs_reference_model(self) -> bool:
        """Whether the run needs the reference checkpoint (its influence or its losses)."""
        return self.uses_influence or self.reads_reference_losses

    @property
    def has_forget_term(self) -> bool:
        return self.method in FORGET_FAMILY

    @property
    def in_rounds(self) -> bool:
        return self.method in IN_ROUNDS

    def round_dir(self, k: int) -> str:
        """Round k's folder below the run's directory (runs trained in rounds)."""
        if not self.in_rounds:
            raise ValueError(f"{self.label}: {self.method} is not trained in rounds")
        if not 1 <= k <= self.rounds:
            raise ValueError(f"{self.label}: round {k} of a {self.rounds}-round run")
        return ROUND_DIR.format(round=k)

    @property
    def last_dir(self) -> str:
        """The folder below the run's directory that holds its model and training log."""
        return f"{self.round_dir(self.rounds)}/" if self.in_rounds else ""

    @property
    def checkpoint(self) -> str:
        """Where the merged model lies below the run's directory (in rounds: the last round's)."""
        return f"{self.last_dir}model"

    @property
    def training_log(self) -> str:
        return f"{self.last_dir}training_log.json"

    @property
    def objective(self) -> dict:
        """The run's own options of the objective: the negative term and lambda's schedule (forget
        family), the share of each batch learnt (selective), None where the method has none."""
        return {"keep": self.rho if self.reads_reference_losses else None,
                "forget_loss": self.forget_loss, "lambda_schedule": self.lambda_schedule}


def partition_label(rho: float, scope: str = "global", score: str = INFLUENCE) -> str:
    """rho{rho}[-per_example][-{score}]: the partition by a token score (influence unwritten)."""
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    if score not in SCORES:
        raise ValueError(f"score {score!r} is not one of {', '.join(SCORES)}")
    return f"rho{rho_label(rho)}" + ("" if scope == "global" else f"-{scope}") + \
        ("" if score == INFLUENCE else f"-{score}")


def random_partition_label(rho: float, seed: int) -> str:
    """The random method's partition: round(rho x N) positives drawn with the run's seed."""
    return RANDOM_PARTITION_DIR.format(rho=rho_label(rho), seed=seed)


def parse_partition(text: str) -> tuple[float, str, str]:
    """'rho0.7-per_example-reference_loss' -> (0.7, 'per_example', 'reference_loss')."""
    match = re.fullmatch(rf"rho(?P<rho>{_RHO}){_SCOPE}{_SCORE}", text)
    if not match:
        raise ValueError(f"{text!r} is not a partition label: expected rho{{rho}}[-per_example][-{{score}}]")
    return float(match["rho"]), match["scope"] or "global", match["score"] or INFLUENCE


def parse_variant(method: str, variant: str) -> dict:
    """The options a method's variant names, or ValueError saying which forms are allowed."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods are {', '.join(METHODS)}")
    match = re.fullmatch(VARIANT_PATTERNS[method], variant)
    if not match:
        hint = " (rho in (0, 1] written like 0.7, 1 or 0.00001)" if "rho" in VARIANT_FORMS[method] else ""
        raise ValueError(f"{variant!r} is not a variant of {method}: {method} variants read {VARIANT_FORMS[method]}{hint}")
    options = {k: v for k, v in match.groupdict().items() if v is not None}
    if "rho" in options:
        options["rho"] = float(options["rho"])
    if "rounds" in options:
        options["rounds"] = int(options["rounds"])
    if method in (IGNORE, FORGET):
        options.setdefault("scope", "global")
    if method in USES_INFLUENCE:
        options.setdefault("score", INFLUENCE)
    return options


def parse(label: str) -> Run:
    """'forget/rho0.7-ascent-linear/seed1' -> Run(...); ValueError naming the allowed forms."""
    parts = label.split("/")
    if len(parts) != 3:
        raise ValueError(f"{label!r} is not a run label: expected METHOD/VARIANT/seedN")
    method, variant, seed = parts
    if not re.fullmatch(f"seed{_SEED}", seed):
        raise ValueError(f"{label!r}: {seed!r} is not a seed: expected seedN, N an integer >= 0 without leading zeros")
    return Run(method=method, seed=int(seed[4:]), **parse_variant(method, variant))


def experiment_dir(config: dict) -> str:
    """results/{data.name}/{model.name}: an experiment, a data setting and a model; everything of
    it lies below."""
    return f"results/{config['data']['name']}/{config['model']['name']}"


def as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def grid(config: dict) -> list[Run]:
    """Every run of the config's grid: methods x rho x options x seeds, in config order."""
    scopes = as_list(config["partition"]["scope"])
    scores = as_list(config["partition"]["score"])
    objectives = [(loss, schedule) for loss in as_list(config["forget"]["forget_loss"])
                  for schedule in as_list(config["forget"]["lambda_schedule"])]
    rounds = config["self_evolving"]["rounds"]
    runs = []
    for seed in config["seeds"]:
        for method in config["methods"]:
            if method == SFT:
                runs.append(Run(SFT, seed))
                continue
            for rho in config["rho"]:
                if method == RHO1:
                    runs.append(Run(method, seed, rho))
                elif method == IGNORE:
                    runs += [Run(method, seed, rho, scope=s, score=c) for s in scopes for c in scores]
                elif method == FORGET:
                    runs += [Run(method, seed, rho, scope=s, score=c, forget_loss=l, lambda_schedule=k)
                             for s in scopes for c in scores for l, k in objectives]
                elif method == RANDOM:
                    runs += [Run(method, seed, rho, forget_loss=l, lambda_schedule=k) for l, k in objectives]
                else:
                    runs += [Run(method, seed, rho, score=c, forget_loss=l, lambda_schedule=k, rounds=rounds)
                             for c in scores for l, k in objectives]
    return runs


def describe_grid(config: dict, method: str) -> str:
    """The variants of `method` in the config's grid, for error messages."""
    variants = sorted({run.variant for run in grid(config) if run.method == method})
    return ", ".join(variants) if variants else f"none ({method} is not in `methods`)"
