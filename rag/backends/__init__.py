"""LLM backends, one module each, behind the protocol in rag.llm (Ollama and embedded still live there)."""
