"""LayerFlow's Streamlit entry: `streamlit run app`.

Pages live in pages/, one script per wizard step; they draw what the engine answers and never
import TensorFlow (shapes and code are pure Python; training, testing, importing and exporting
run in child processes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
# `streamlit run app` puts app/ first on the path, not the repository. app/ must not stay there:
# its packages (app/keras, app/data, ...) would shadow the real libraries of the same names.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "app"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ui.nav import PAGES  # noqa: E402  (needs the repository on the path)

STEPS = [
    ("start", "Start", ":material/home:"),
    ("data", "Data", ":material/table:"),
    ("model", "Model", ":material/account_tree:"),
    ("search", "Search", ":material/travel_explore:"),
    ("train", "Train", ":material/model_training:"),
    ("test", "Test", ":material/fact_check:"),
    ("predict", "Predict", ":material/online_prediction:"),
    ("export", "Export", ":material/download:"),
    ("runs", "Runs", ":material/history:"),
    ("playground", "Playground", ":material/school:"),
]

st.set_page_config(page_title="LayerFlow", layout="wide")
for name, title, icon in STEPS:
    PAGES[name] = st.Page(
        str(ROOT / "pages" / f"{name}.py"), title=title, icon=icon, default=name == "start",
        url_path=name,
    )
page = st.navigation(list(PAGES.values()))
page.run()
