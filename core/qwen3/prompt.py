"""The Qwen3-Reranker prompt: the exact strings of its model card (``Qwen/Qwen3-Reranker-0.6B``).

The card builds ``prefix + "<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {doc}" + suffix``,
tokenizing the prefix and suffix apart from the pair text, and scores
``softmax([logit_no, logit_yes])[1]`` at the last position, which is
``sigmoid(logit_yes - logit_no)``.
"""

from __future__ import annotations

from prism_core.runtime.tokenization import PromptTemplate

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)

#: The card's default task instruction.
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

PREFIX = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def qwen3_template(instruction: str | None = None) -> PromptTemplate:
    """The prompt for ``instruction`` (``None``: the card's default).

    Example:
        >>> qwen3_template().format("q", "d").count("<Document>: d")
        1
    """
    return PromptTemplate(
        prefix=PREFIX,
        query_head=f"<Instruct>: {instruction or DEFAULT_INSTRUCTION}\n<Query>: ",
        doc_head="\n<Document>: ",
        suffix=SUFFIX,
    )


def format_instruction(instruction: str | None, query: str, doc: str) -> str:
    """The card's ``format_instruction``: the pair text between prefix and suffix."""
    return f"<Instruct>: {instruction or DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {doc}"
