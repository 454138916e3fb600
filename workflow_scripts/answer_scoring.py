"""lm-eval's Hugging Face model, scoring exactly the target's tokens when prompts are in a chat template.

lm-eval's `_encode_pair` moves a context's trailing whitespace into the continuation it scores, so
that " 42" after "Answer:" is one word. A chat template's context ends with the assistant header,
`<|im_start|>assistant\\n`: the template's own newline then becomes part of the scored continuation,
and `acc` (is_greedy) asks whether the model puts that prompt token first, a token no method ever
trains. A model that answers right but opens its turn with another token read 0.

`AnswerOnlyHFLM` keeps the context whole and scores what follows it: the tokens of context + target
after the context's own tokens, which are the target's tokens whenever the context's tokens are a
prefix of the whole's (a tokenizer that merges across the boundary gets the target encoded alone).
evaluate.py uses it for prompts in the chat template only: raw-prompt scoring (the paper's configs)
stays lm-eval's own.
"""
from __future__ import annotations

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

MODEL_NAME = "hf-answer-only"


@register_model(MODEL_NAME)
class AnswerOnlyHFLM(HFLM):
    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        context_enc = self.tok_encode(context)
        whole_enc = self.tok_encode(context + continuation)
        if whole_enc[: len(context_enc)] == context_enc:
            return context_enc, whole_enc[len(context_enc):]
        return context_enc, self.tok_encode(continuation, add_special_tokens=False)
