"""``python -m ollama_openai.schemas``: the README's field tables, made from the code's."""

from .chat_fields import CHAT_TABLE
from .completions import COMPLETION_TABLE
from .embeddings import EMBEDDING_TABLE
from .responses_fields import RESPONSES_TABLE

for table in (CHAT_TABLE, COMPLETION_TABLE, EMBEDDING_TABLE, RESPONSES_TABLE):
    print(f"`{table.endpoint}`:\n\n{table.markdown()}\n")
