"""The run grammar: what a trained checkpoint is, and how its path names it.

A run is one method with its options and a seed; its label is the path component
`{method}/{variant}/seed{seed}` under `results/{data}/{model}/`. The variant carries exactly the
options that make the method's runs different, so one label names one run and one run has one
label. Each method is declared once (METHOD_PARTS, and what it needs in the sets below it) as the
parts its variant is made of; each part (PARTS) as its alternatives, each a Form: the text a person
reads, from which its pattern and its writing follow, and the options choosing it fixes. The label
pattern, the form an error shows, a run's label, a label's parse, the options a run must have and
the grid of a config all derive from those declarations, so that a new partition rule or forget
loss is one entry (and its tests):

    sft            all
    ignore         {partition}
    forget         {partition}-{objective}
    random         rho{rho}-random-{objective}
    rho1           rho{rho}
    self_evolving  rho{rho}[-{score}]-K{rounds}-{objective}

    {partition}    rho{rho}[-{scope}][-{score}]    top_rho: the top rho positive, the rest negative (the paper)
                   rho{rho}-tail{tail}[-{score}]   band: the top rho positive, the lowest tail
                                                   negative, the middle neither
                   below{threshold}[-{score}]      threshold: the tokens scoring below it negative
                   estimated[-{score}]             estimated_share: the lowest population of the scores
                                                   negative where it is separated from the rest,
                                                   else none (the rule abstains)
    {objective}    {forget_loss}-{lambda_schedule}    ascent, unlikelihood
                   npo{beta}-{lambda_schedule}        npo, with its beta

A bracketed piece is left out at the option's default (DEFAULTS: global scope, the paper's
influence score), so the paper's runs keep their paths. Numbers are written in positional notation
with the fewest digits that read back to the same float (0.7, 1, 0.00001, -0.5), so
`parse(label(run)) == run` for every value the config schema accepts and `label(parse(text)) ==
text` for every text that parses. The Snakefile, the summary, the plots and the tests read and
write labels only through this module, and ask a run what its method needs (a partition, the
reference losses, rounds) and where its files lie; it imports nothing beyond the standard library,
so the Snakefile can use it at planning time.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal

SCOPES = ("global", "per_example")
# Token scores a partition ranks by (formulas: token_scores.py); the first is the paper's. The
# oracle reads the pool's own noise marks: the bound no label-free score can pass.
SCORES = ("influence", "reference_loss", "relative_influence", "base_loss", "oracle")
INFLUENCE, ORACLE = SCORES[0], SCORES[-1]
# Scores whose zero means something (below it: the reference made the token less likely than the
# base model did; the oracle: a marked token): the estimated share looks for the noise below it. The
# others (losses, negated) have no zero: there the noise is the separated population of the highest
# losses (workflow_scripts/noise_share.py).
SIGNED_SCORES = ("influence", "relative_influence", "oracle")
# How a partition splits the tokens (workflow_scripts/partition.py); the first is the paper's.
RULES = ("top_rho", "band", "threshold", "estimated_share")
TOP_RHO, BAND, THRESHOLD, ESTIMATED_SHARE = RULES
FORGET_LOSSES = ("ascent", "unlikelihood", "npo")
ASCENT, UNLIKELIHOOD, NPO = FORGET_LOSSES
# The negative terms without an option of their own, written by their name alone in a label (npo
# carries its beta).
UNPARAMETERISED_LOSSES = tuple(loss for loss in FORGET_LOSSES if loss != NPO)
LAMBDA_SCHEDULES = ("linear", "constant", "cosine")

# The words an option may take, and what a label leaves unwritten (the paper's choices).
CHOICES = {"scope": SCOPES, "score": SCORES, "rule": RULES, "forget_loss": FORGET_LOSSES,
           "lambda_schedule": LAMBDA_SCHEDULES}
DEFAULTS = {"scope": SCOPES[0], "score": INFLUENCE, "rule": TOP_RHO}

_FRACTION = r"(?:0\.[0-9]*[1-9]|1)"  # in (0, 1]: no trailing zeros, no exponent, no leading '+'
_POSITIVE = r"(?:0\.[0-9]*[1-9]|[1-9][0-9]*(?:\.[0-9]*[1-9])?)"
_SEED = r"(?:0|[1-9][0-9]*)"
# Options that are numbers: (type, the pattern of their label, the check of their value).
NUMBERS = {
    "rho": (float, _FRACTION, lambda v: 0 < v <= 1, "in (0, 1]"),
    "tail": (float, _FRACTION, lambda v: 0 < v <= 1, "in (0, 1]"),
    "threshold": (float, rf"(?:-?{_POSITIVE}|0)", math.isfinite, "a finite number"),
    "beta": (float, _POSITIVE, lambda v: 0 < v < math.inf, "> 0"),
    "rounds": (int, r"[1-9][0-9]*", lambda v: v >= 1, ">= 1"),
}
# Where the grid takes each option's values in the config (a value or a list).
CONFIG_KEYS = {"rho": ("rho",), "scope": ("partition", "scope"), "score": ("partition", "score"),
               "rule": ("partition", "rule"), "tail": ("partition", "tail"),
               "threshold": ("partition", "threshold"), "forget_loss": ("forget", "forget_loss"),
               "beta": ("forget", "npo_beta"), "lambda_schedule": ("forget", "lambda_schedule"),
               "rounds": ("self_evolving", "rounds")}
OPTIONS = tuple(CONFIG_KEYS)


def number_label(value: float) -> str:
    """0.7 -> '0.7', 1.0 -> '1', 1e-05 -> '0.00001', -0.0 -> '0': positional, shortest exact round trip."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    text = format(Decimal(repr(value + 0.0)), "f")  # + 0.0 turns -0.0 into 0.0
    return text.rstrip("0").rstrip(".") if "." in text else text


def rho_label(rho: float) -> str:
    """A share in (0, 1], written as number_label writes it."""
    if not 0 < float(rho) <= 1:
        raise ValueError(f"rho must be in (0, 1], got {rho!r}")
    return number_label(rho)


def _pieces(text: str) -> list[tuple[bool, str]]:
    """'rho{rho}[-{score}]' -> [(False, 'rho{rho}'), (True, '-{score}')]."""
    return [(bool(optional), optional or plain) for optional, plain in re.findall(r"\[([^\]]*)\]|([^\[]+)", text)]


@dataclass(frozen=True)
class Form:
    """One alternative of a variant's part. `text` is what a person reads: `{option}` a value,
    `[...]` a piece left out at the option's default; `fixed` the options that choosing this
    alternative sets; `only` narrows an option's words to those this alternative writes."""
    text: str
    fixed: dict = field(default_factory=dict)
    only: dict = field(default_factory=dict)

    @property
    def options(self) -> tuple[str, ...]:
        """Every option the alternative carries, in the order it writes them."""
        return tuple(dict.fromkeys([*re.findall(r"\{(\w+)\}", self.text), *self.fixed]))

    def choices(self, option: str) -> tuple:
        return self.only.get(option, CHOICES.get(option, ()))

    def admits(self, values: dict) -> bool:
        """Whether a run with these option values is written in this form."""
        return all(values.get(k) == v for k, v in self.fixed.items()) and \
            all(values.get(k) is None or values[k] in self.choices(k) for k in self.only)

    def _value_pattern(self, option: str) -> str:
        if option in NUMBERS:
            return f"(?P<{option}>{NUMBERS[option][1]})"
        words = [w for w in self.choices(option) if w != DEFAULTS.get(option)]
        return f"(?P<{option}>{'|'.join(map(re.escape, words))})"

    @property
    def pattern(self) -> str:
        out = ""
        for optional, piece in _pieces(self.text):
            chunks = re.split(r"\{(\w+)\}", piece)  # literal, option, literal, ...
            regex = "".join(self._value_pattern(c) if i % 2 else re.escape(c) for i, c in enumerate(chunks))
            out += f"(?:{regex})?" if optional else regex
        return out

    def write(self, values: dict) -> str:
        out = ""
        for optional, piece in _pieces(self.text):
            if optional and all(values[n] == DEFAULTS.get(n) for n in re.findall(r"\{(\w+)\}", piece)):
                continue
            out += re.sub(r"\{(\w+)\}", lambda m: _word(values[m[1]]), piece)
        return out

    def read(self, match: re.Match) -> dict:
        values = {k: v for k, v in match.groupdict().items() if v is not None}
        values = {k: NUMBERS[k][0](v) if k in NUMBERS else v for k, v in values.items()}
        return {**values, **self.fixed}


def _word(value) -> str:
    return value if isinstance(value, str) else number_label(value)


# The parts a variant is made of, each with its alternatives.
LEARNT_SCORES = tuple(s for s in SCORES if s != ORACLE)
PARTS = {
    "all": (Form("all"),),
    "partition": (Form("rho{rho}[-{scope}][-{score}]", {"rule": TOP_RHO}),
                  Form("rho{rho}-tail{tail}[-{score}]", {"rule": BAND}),
                  Form("below{threshold}[-{score}]", {"rule": THRESHOLD}),
                  Form("estimated[-{score}]", {"rule": ESTIMATED_SHARE})),
    "rho": (Form("rho{rho}"),),
    "random": (Form("rho{rho}-random"),),
    # Rounds of a self-evolving reference: its influence is recomputed from models, never an oracle.
    "rounds": (Form("rho{rho}[-{score}]-K{rounds}", only={"score": LEARNT_SCORES}),),
    "objective": (Form("{forget_loss}-{lambda_schedule}", only={"forget_loss": UNPARAMETERISED_LOSSES}),
                  Form("npo{beta}-{lambda_schedule}", {"forget_loss": NPO})),
}
# Each method, declared once: the parts of its variant, joined by '-'.
METHOD_PARTS = {
    "sft": ("all",),  # plain SFT: the reference model's objective and the baseline of every method
    "ignore": ("partition",),
    "forget": ("partition", "objective"),
    "random": ("random", "objective"),  # forget with round(rho x N) positives drawn at random: the control
    "rho1": ("rho",),  # Rho-1: each batch's top-rho tokens by excess loss over the reference losses
    "self_evolving": ("rounds", "objective"),
}
METHODS = tuple(METHOD_PARTS)
SFT, IGNORE, FORGET, RANDOM, RHO1, SELF_EVOLVING = METHODS
# What each method needs besides the base model and the tokenized training data.
FORGET_FAMILY = tuple(m for m, parts in METHOD_PARTS.items() if "objective" in parts)  # a negative term
USES_INFLUENCE = (IGNORE, FORGET, SELF_EVOLVING)  # the influence table (reference model, both loss tables)
PARTITIONED = (IGNORE, FORGET, RANDOM)  # a partition file (random: its own, drawn with the run's seed)
SELECTIVE = (RHO1,)  # the reference losses, no partition
IN_ROUNDS = (SELF_EVOLVING,)  # one job per round; the others are one `train_final` job

# Folders below an experiment or a run, as format strings whose fields are the rules' wildcards.
RANDOM_PARTITION_DIR = "rho{rho}-random/seed{seed}"
ROUND_DIR = "round{round}"


def _unnamed(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


def _combinations(method: str):
    """Every combination of one alternative per part of the method's variant."""
    return itertools.product(*(PARTS[part] for part in METHOD_PARTS[method]))


def variant_pattern(forms) -> str:
    return "-".join(form.pattern for form in forms)


def variant_form(method: str) -> str:
    """What a person reads in an error message: the variant's parts, alternatives spelt out."""
    parts = METHOD_PARTS[method]
    text = "-".join(PARTS[p][0].text if len(PARTS[p]) == 1 else f"{{{p}}}" for p in parts)
    legend = [f"{{{p}}} is {' or '.join(form.text for form in PARTS[p])}" for p in parts if len(PARTS[p]) > 1]
    return text + (f" ({'; '.join(legend)})" if legend else "")


# The whole label `{method}/{variant}/seed{seed}`, to tell a label from other text (tests), and a
# partition folder (the Snakefile's wildcard).
RUN_PATTERN = "|".join(f"{method}/{_unnamed(variant_pattern(forms))}/seed{_SEED}"
                       for method in METHODS for forms in _combinations(method))
PARTITION_PATTERN = "|".join(_unnamed(form.pattern) for form in PARTS["partition"])
SEED_PATTERN = _SEED
RHO_PATTERN = _FRACTION


@dataclass(frozen=True)
class Run:
    """One trained checkpoint of the grid. Options a method (or its forms) does not have are None."""
    method: str
    seed: int
    rho: float | None = None
    scope: str | None = None  # global | per_example (the top_rho partition)
    score: str | None = None  # the partition's token score (default: influence)
    forget_loss: str | None = None  # ascent | unlikelihood | npo (forget family)
    lambda_schedule: str | None = None  # linear | constant | cosine (forget family)
    rounds: int | None = None  # self_evolving
    rule: str | None = None  # the partition's rule (ignore, forget; default: top_rho)
    tail: float | None = None  # band: the lowest share negative
    threshold: float | None = None  # threshold: negatives score below it
    beta: float | None = None  # npo: the inverse temperature of the bounded negative term

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; methods are {', '.join(METHODS)}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        values = {option: getattr(self, option) for option in OPTIONS}
        if "partition" in METHOD_PARTS[self.method] and values["rule"] is None:
            values["rule"] = DEFAULTS["rule"]
        forms = self.forms(values)
        carried = {option for form in forms for option in form.options}
        for option in carried & set(DEFAULTS):
            if values[option] is None:
                values[option] = DEFAULTS[option]
        for option in OPTIONS:
            if (option in carried) != (values[option] is not None):
                raise ValueError(f"{self.method}{_which(forms, values)} {'needs' if option in carried else 'has no'} "
                                 f"option {option!r}: {self!r}")
            object.__setattr__(self, option, values[option])
        for option in carried:
            value = values[option]
            if option in NUMBERS:
                kind, _, valid, allowed = NUMBERS[option]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not valid(value):
                    raise ValueError(f"{option} must be {allowed}, got {value!r}")
                object.__setattr__(self, option, kind(value))
            elif not any(value in form.choices(option) for form in forms if option in form.options):
                allowed = dict.fromkeys(word for part in METHOD_PARTS[self.method] for form in PARTS[part]
                                        if option in form.options for word in form.choices(option))
                raise ValueError(f"{option} {value!r} is not one of {', '.join(allowed)}")
        if self.tail is not None and (overlap := band_overlap(self.rho, self.tail)):
            raise ValueError(overlap)

    def forms(self, values: dict | None = None) -> tuple[Form, ...]:
        """The alternative of each part of the variant that writes this run."""
        values = values or {option: getattr(self, option) for option in OPTIONS}
        return tuple(next((form for form in PARTS[part] if form.admits(values)), PARTS[part][0])
                     for part in METHOD_PARTS[self.method])

    @property
    def options(self) -> dict:
        return {option: getattr(self, option) for option in OPTIONS}

    @property
    def variant(self) -> str:
        return "-".join(form.write(self.options) for form in self.forms())

    @property
    def label(self) -> str:
        return f"{self.method}/{self.variant}/seed{self.seed}"

    @property
    def partition(self) -> str | None:
        """The label of the partition file this run trains with (None: it reads none)."""
        if self.method == RANDOM:
            return random_partition_label(self.rho, self.seed)
        if self.method in PARTITIONED:
            return self.forms()[0].write(self.options)
        return None

    @property
    def uses_influence(self) -> bool:
        return self.method in USES_INFLUENCE

    @property
    def reads_reference_losses(self) -> bool:
        return self.method in SELECTIVE

    @property
    def reads_base_losses(self) -> bool:
        """NPO's negative term compares the model with the base model's own token losses."""
        return self.forget_loss == NPO

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
        """The run's own options of the objective: the negative term, its beta and lambda's schedule
        (forget family), the share of each batch learnt (selective), None where the method has none."""
        return {"keep": self.rho if self.reads_reference_losses else None, "forget_loss": self.forget_loss,
                "beta": self.beta, "lambda_schedule": self.lambda_schedule}


def _which(forms, values) -> str:
    fixed = {k: v for form in forms for k, v in form.fixed.items() if values.get(k) == v}
    return f" ({', '.join(f'{k} {v}' for k, v in fixed.items())})" if fixed else ""


PARTITION_OPTIONS = tuple(dict.fromkeys(o for form in PARTS["partition"] for o in form.options))
# Each partition rule's numbers, which it cannot do without (its form writes them; the words have
# defaults): {'top_rho': ('rho',), 'band': ('rho', 'tail'), ...}.
RULE_NUMBERS = {form.fixed["rule"]: tuple(o for o in form.options if o in NUMBERS) for form in PARTS["partition"]}


def band_overlap(rho: float, tail: float) -> str | None:
    """Why a band's top rho and lowest tail cannot both be taken (they would share tokens), or None."""
    if rho + tail > 1 + 1e-12:
        return f"band: rho {rho} and tail {tail} overlap (rho + tail must be <= 1)"
    return None


def partition_label(rho: float | None = None, scope: str | None = None, score: str = INFLUENCE, rule: str = TOP_RHO,
                    tail: float | None = None, threshold: float | None = None) -> str:
    """The folder of a partition by a token score, e.g. rho0.7, rho0.7-per_example-reference_loss,
    below0, estimated-oracle (the paper's influence and global scope unwritten): an ignore run's variant."""
    return Run(IGNORE, 0, rho=rho, scope=scope, score=score, rule=rule, tail=tail, threshold=threshold).variant


def random_partition_label(rho: float, seed: int) -> str:
    """The random method's partition: round(rho x N) positives drawn with the run's seed."""
    return RANDOM_PARTITION_DIR.format(rho=rho_label(rho), seed=seed)


def parse_partition(text: str) -> dict:
    """'rho0.7-per_example-reference_loss' -> {'rule': 'top_rho', 'rho': 0.7, 'scope': 'per_example',
    'score': 'reference_loss'}: the options of the partition rule, the defaults filled in."""
    for form in PARTS["partition"]:
        match = re.fullmatch(form.pattern, text)
        if match:
            run = Run(IGNORE, 0, **form.read(match))
            return {k: v for k, v in run.options.items() if k in PARTITION_OPTIONS and v is not None}
    raise ValueError(f"{text!r} is not a partition label: expected {' or '.join(f.text for f in PARTS['partition'])}")


def parse_variant(method: str, variant: str) -> dict:
    """The options a method's variant names, or ValueError saying which forms are allowed."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods are {', '.join(METHODS)}")
    for forms in _combinations(method):
        match = re.fullmatch(variant_pattern(forms), variant)
        if match:
            options = {}
            for form in forms:
                options.update(form.read(match))
            return options
    hint = " (numbers written like 0.7, 1, 0.00001 or -0.5)" if "{" in variant_form(method) else ""
    raise ValueError(f"{variant!r} is not a variant of {method}: {method} variants read {variant_form(method)}{hint}")


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


def config_values(config: dict, option: str) -> list:
    """The grid's values of one option: the config's value or list (a section or key the config
    leaves out: the option's default)."""
    value = config
    for key in CONFIG_KEYS[option]:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        value = DEFAULTS.get(option)
    if value is None:
        raise ValueError(f"the grid needs {'.'.join(CONFIG_KEYS[option])}: it has runs that read it")
    return as_list(value)


def grid(config: dict) -> list[Run]:
    """Every run of the config's grid: seeds x methods x the alternatives of each part x the
    values of their options, in config order. An alternative that fixes an option (rule: band,
    forget_loss: npo) is in the grid when the config lists that value."""
    runs = []
    for seed in config["seeds"]:
        for method in config["methods"]:
            for forms in _combinations(method):
                fixed = {k: v for form in forms for k, v in form.fixed.items()}
                if any(v not in config_values(config, k) for k, v in fixed.items()):
                    continue
                free = [o for form in forms for o in form.options if o not in fixed]
                lists = [[v for v in config_values(config, o)
                          if all(v in form.choices(o) for form in forms if o in form.only)] for o in free]
                runs += [Run(method, seed, **fixed, **dict(zip(free, values))) for values in itertools.product(*lists)]
    return runs


def describe_grid(config: dict, method: str) -> str:
    """The variants of `method` in the config's grid, for error messages."""
    variants = sorted({run.variant for run in grid(config) if run.method == method})
    return ", ".join(variants) if variants else f"none ({method} is not in `methods`)"
