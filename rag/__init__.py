"""The engine of a local, private chat-with-your-documents app. Never imports streamlit."""

from rag.config import force_offline

force_offline()
