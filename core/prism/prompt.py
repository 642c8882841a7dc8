"""The Prism-Reranker prompt: the exact strings the models were trained on.

Treat these as a data contract: one changed character changes the scores.
"""

from __future__ import annotations

from prism_core.runtime.tokenization import PromptTemplate

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
)

INSTRUCTION = (
    'Judge if the document is relevant to the query. Reply "yes" or "no".\n'
    'On "yes", also emit:\n'
    "<contribution>One sentence covering every core point the document contributes to the query, "
    "without elaboration.</contribution>\n"
    "<evidence>Self-contained rewrite of the query-relevant content. Rules:\n"
    "- Faithful: rephrase only; add or infer nothing.\n"
    "- Self-contained: evidence alone must fully answer the query.\n"
    "- Concise: drop query-irrelevant background.\n"
    "- Verbatim (no translation): proper nouns, terms, abbreviations, numbers, dates, code, URLs.\n"
    "- Output language: multilingual doc → query's language; else doc's language.</evidence>"
)

PROMPT_TEMPLATE = (
    "<|im_start|>system\n{system}<|im_end|>\n"
    "<|im_start|>user\n<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}<|im_end|>\n"
    "<|im_start|>assistant\n<think>\n\n</think>\n\n"
)


def format_prompt(query: str, document: str) -> str:
    """Return the full prompt string exactly as the model card builds it.

    This is the *string* form, for reference and for the model card's loop. The engine never
    tokenizes this string directly: caller text could then inject control tokens. See
    :class:`prism_core.runtime.tokenization.PromptTokenizer`.

    Example:
        >>> format_prompt("q", "d").endswith("<think>\\n\\n</think>\\n\\n")
        True
    """
    return PROMPT_TEMPLATE.format(system=SYSTEM_PROMPT, instruction=INSTRUCTION, query=query, doc=document)


#: The prompt cut where caller text goes in (see :class:`~prism_core.runtime.tokenization.PromptTemplate`).
PRISM_TEMPLATE = PromptTemplate(
    prefix=f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>",
    query_head=f"user\n<Instruct>: {INSTRUCTION}\n<Query>: ",
    doc_head="\n<Document>: ",
    suffix="<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
)
