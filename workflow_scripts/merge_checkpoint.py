"""Write an adapter merged into its base model as one plain safetensors checkpoint, for deployment.

The workflow never reads this copy (every stage merges in memory: modeling.load_causal_lm); it
exists for a user who wants one model directory that any transformers, vLLM or TGI loader takes.
Output: results/{dataset}/{model}/{adapter}.merged/ (the model in --dtype and the tokenizer).
"""
from __future__ import annotations

import argparse

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging
from workflow_scripts.modeling import adapter_base, check_model_dir, is_adapter, load_causal_lm

log = setup_logging("merge_checkpoint")


def merge(adapter: str, out: str, dtype: str = "float32") -> None:
    from transformers import AutoTokenizer

    check_model_dir(adapter)
    if not is_adapter(adapter):
        raise InputError(f"{adapter}: a whole model already, not an adapter: nothing to merge")
    model = load_causal_lm(adapter, dtype, place=False)
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(adapter).save_pretrained(tmp)
    log.info("merged %s into %s (%s) -> %s", adapter, adapter_base(adapter), dtype, out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", required=True, help="adapter directory (adapter_config.json names its base)")
    parser.add_argument("--dtype", default="float32", help="dtype of the merged weights (the config's model.dtype)")
    parser.add_argument("--out", required=True, help="merged checkpoint directory")
    args = parser.parse_args(argv)
    merge(args.adapter, args.out, args.dtype)


if __name__ == "__main__":
    run_main(main)
