"""Measurement tools, not used by the app at run time: `rag.tools.evaluation` (retrieval quality on gold
answers, `python -m rag eval`) and `rag.tools.bench` (throughput and latency, `python -m rag bench`)."""
