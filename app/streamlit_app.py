"""LayerFlow's Streamlit entry: `streamlit run app`.

Pages live in pages/, one script per wizard step; they draw what the engine answers and never
import TensorFlow (shapes and code are pure Python).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app` puts app/ first on the path, not the repo
    sys.path.insert(0, str(ROOT))

st.set_page_config(page_title="LayerFlow", layout="wide")
page = st.navigation([st.Page(str(ROOT / "pages" / "start.py"), title="Start", default=True)])
page.run()
