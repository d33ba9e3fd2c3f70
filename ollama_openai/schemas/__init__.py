"""Validation of OpenAI requests: what a body may hold before it is translated.

Each ``validate_*`` function takes the parsed JSON body and either returns it unchanged or
raises a 400 ApiError whose ``param`` names the field, in OpenAI's notation
(``messages.[0].content``). Fields fall in four groups, listed in the README: honoured,
ignored (harmless, such as ``user``), refused unless left at their default, and unknown
(refused, as OpenAI itself does). Nothing a client sends is dropped silently.

One module per endpoint (``chat``, ``completions``, ``embeddings``, ``responses``), built
from the shared ``checks`` and each endpoint's field table (``fields``); chat's ``messages``
and ``tools`` have their own. What a request may ask of its model is checked once the model is
known: the operator's ``policy`` (the models file) and the model's ``capabilities``.
"""

from .capabilities import check_capabilities, needed_capabilities
from .chat import validate_chat_request
from .completions import validate_completion_request
from .embeddings import validate_embedding_request
from .policy import apply_policy
from .responses import validate_responses_request
from .responses_items import check_function_outputs

__all__ = [
    "apply_policy",
    "check_capabilities",
    "check_function_outputs",
    "needed_capabilities",
    "validate_chat_request",
    "validate_completion_request",
    "validate_embedding_request",
    "validate_responses_request",
]
