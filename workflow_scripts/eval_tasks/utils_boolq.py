"""boolq_short's selection, applied by lm-eval to the loaded split (`process_docs`)."""

MAX_PASSAGE_WORDS = 50  # the embedded pool's data.boolq_max_passage_words default


def short_passages(dataset):
    return dataset.filter(lambda doc: len(doc["passage"].split()) <= MAX_PASSAGE_WORDS)
