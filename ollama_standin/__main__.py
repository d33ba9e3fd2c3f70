"""`python -m ollama_standin --port N`: the stand-in under gevent, for the benchmark."""

from gevent import monkey

monkey.patch_all()

from ollama_standin.serving import main  # noqa: E402

if __name__ == "__main__":
    main()
