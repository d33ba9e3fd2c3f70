"""Pure translation between the OpenAI API and Ollama's native API: dicts in, dicts out.

No HTTP, no Flask, no requests. Bodies arrive already validated by ``schemas``. One module per
endpoint offers a plan for a request (the Ollama payloads, the answer's identity, the stream
translator and the builder of the whole answer); the rules they share live once:

- ``envelope``: answer ids and the envelope around choices (id, object, created, model, ...);
- ``options``: sampling fields -> Ollama ``options``, ``think``, ``n``;
- ``tools``: tools offered, tool calls sent back to Ollama, Ollama's calls -> OpenAI's;
- ``answers``: finish reasons, usage, log probabilities, and the plan of a generation, whose
  streamed chunks and whole answer come from the same per-choice steps;
- ``chat``, ``completions``, ``embeddings``, ``models``: one per endpoint.
"""
