"""The wizard's pages: made by the entry (app/streamlit_app.py), linked to from every page.

Apart from ui.session so that the entry imports nothing of the engine: the navigation and the
first page's title reach the browser while the engine is still loading.
"""

from __future__ import annotations

from typing import Any

PAGES: dict[str, Any] = {}  # step name -> st.Page
