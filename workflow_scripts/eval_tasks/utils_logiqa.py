"""LogiQA prompt helpers, copied from lm-eval 0.4.13 (lm_eval/tasks/logiqa/utils_logiqa.py).

doc_to_text is unchanged. doc_to_target also accepts this pipeline's integer labels (0..3);
lm-eval's own data set stores the label as a letter "a".."d".
"""

CHOICES = ["a", "b", "c", "d"]


def doc_to_text(doc) -> str:
    """
    Passage: <passage>
    Question: <question>
    Choices:
    A. <choice1>
    B. <choice2>
    C. <choice3>
    D. <choice4>
    Answer:
    """
    prompt = "Passage: " + doc["context"] + "\n"
    prompt += "Question: " + doc["question"] + "\nChoices:\n"
    for choice, option in zip(CHOICES, doc["options"]):
        prompt += f"{choice.upper()}. {option}\n"
    prompt += "Answer:"
    return prompt


def doc_to_target(doc) -> int:
    label = doc["label"]
    if isinstance(label, str) and not label.strip().isdigit():
        return CHOICES.index(label.strip().lower())
    return int(label)
