"""The Streamlit app renders its pages without errors and without importing TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

ENTRY = str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py")


def test_start_page_shows_a_template_with_its_shapes_and_code():
    app = AppTest.from_file(ENTRY, default_timeout=60).run()
    assert not app.exception
    assert app.title[0].value == "LayerFlow"
    app.selectbox[0].select("image_classification").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert list(table["id"])[0] == "image"
    assert "(None, 8, 8, 1)" in list(table["output_shape"])
    assert "def build_model() -> keras.Model:" in app.code[0].value


def test_rendering_a_page_does_not_import_tensorflow():
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"app = AppTest.from_file({ENTRY!r}, default_timeout=60).run()\n"
        "assert not app.exception, app.exception\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]
