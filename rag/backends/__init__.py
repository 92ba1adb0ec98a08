"""LLM backends, one module each, behind the protocol in `rag.backends.base`:

* `rag.backends.base`: the `LLMBackend` protocol, `GenerationOptions`, `TokenStream`, the retry policy, the
  token estimate and `complete_with`;
* `rag.backends.ollama`: Ollama;
* `rag.backends.embedded`: llama.cpp on a GGUF file, the built-in model;
* `rag.backends.openai`: any OpenAI-compatible server.
"""
