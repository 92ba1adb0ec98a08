"""The app's entry point (`streamlit run app.py`): its pages, and the start-up every page shares, done once.

Each run: the page configuration; the navigation (Streamlit's `st.navigation`, in the sidebar); the start-up
— settings, the engine with its shared parts, the default knowledge base on first start, the sidebar saying
which model answers —; then the page the person is on, from pages/. When the start-up fails, the message says
what to fix, and only the Settings page (where most of it is fixed) still opens.
"""

from __future__ import annotations

import streamlit as st

from ui_common import explain_failed_start, start

st.set_page_config(page_icon="💬", layout="wide")  # each page's title is its tab's

# Material icons ship with Streamlit; emoji depend on the system's fonts.
CHAT = st.Page("pages/chat.py", title="Chat", icon=":material/chat:", default=True)
DOCUMENTS = st.Page("pages/documents.py", title="Documents", icon=":material/description:")
SETTINGS = st.Page("pages/settings.py", title="Settings", icon=":material/settings:")

page = st.navigation([CHAT, DOCUMENTS, SETTINGS])
startup = start()
if startup.error is not None and page.url_path != SETTINGS.url_path:
    explain_failed_start(startup.error)
    st.stop()
page.run()
