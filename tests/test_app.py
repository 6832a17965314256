"""The wizard's pages, driven by Streamlit's AppTest over temporary workspaces: each page draws
what the engine answers and saves what the user changes; none imports TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.graph.analysis import analyze
from app.graph.edit import set_label, set_settings
from app.graph.model_templates import load_template
from app.workspace import Workspace
from app.workspace.project import Project

ROOT = Path(__file__).resolve().parent.parent
ENTRY = str(ROOT / "app" / "streamlit_app.py")
PAGES = ("start", "data", "model", "search", "train", "test", "predict", "export", "runs")


def page(name: str, project: str | None = None) -> AppTest:
    """The app showing page `name` (with `project` open), run once."""
    app = AppTest.from_file(ENTRY, default_timeout=60)
    if project:
        app.query_params["project"] = project
    app.run()
    if name != "start":
        app.switch_page(str(ROOT / "pages" / f"{name}.py")).run()
    assert not app.exception, app.exception
    return app


def button(app: AppTest, label: str):
    return next(b for b in app.button if b.label == label)


def new_project(name: str = "digits", template: str = "image_classification"):
    return Workspace.current().create_project(name, load_template(template).model_copy(update={}))


def add_iris(name: str = "iris") -> None:
    from app.data.samples import make_sample

    with tempfile.TemporaryDirectory() as folder:
        Workspace.current().add_dataset(make_sample("iris", Path(folder) / "iris"), name)


def test_start_page_shows_a_template_with_its_shapes_and_code(workspace):
    app = page("start")
    assert app.title[0].value == "LayerFlow"
    app.selectbox[0].select("image_classification").run()
    table = next(md.value for md in app.markdown if md.value.startswith("| Node"))
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    assert rows[0][0] == "| Image"
    assert any(row[2] == r"\(None, 8, 8, 1\)" for row in rows), table
    assert not app.code, "the code is made only when its expander is opened"
    app.session_state["start_code"] = True  # what opening the expander does
    app.run()
    assert "def build_model() -> keras.Model:" in app.code[0].value


def test_only_the_open_start_tab_runs(workspace):
    app = page("start")
    assert not app.get("file_uploader")
    app.session_state["start_tab"] = "Import a Keras model"  # what clicking the tab does
    app.run()
    assert [uploader.label for uploader in app.get("file_uploader")] == ["Keras model"]
    assert not app.selectbox, "the template gallery is not drawn behind the import tab"


def test_creating_a_project_saves_it_names_its_model_and_opens_the_data_step(workspace):
    app = page("start")
    app.selectbox[0].select("tabular_classification").run()
    app.text_input[0].set_value("flowers")  # a form: its values go with the submit
    button(app, "Create project").click().run()
    assert not app.exception
    assert app.title[0].value == "Data"
    assert app.query_params["project"] == "flowers"
    flowers = Workspace.current().project("flowers")
    assert flowers.graph().meta.name == "flowers"  # its runs are its own


def test_a_bad_project_name_is_refused_with_its_reason(workspace):
    app = page("start")
    app.text_input[0].set_value("no spaces please")
    button(app, "Create project").click().run()
    assert "no spaces please" in app.error[0].value
    assert not (workspace / "projects").exists() or not any((workspace / "projects").iterdir())


def test_pages_need_a_project_and_say_so(workspace):
    for name in PAGES[1:]:
        app = page(name)
        assert "Open or create a project first." in app.info[0].value


def test_the_data_page_adds_a_sample_and_attaches_it(workspace):
    new_project("flowers", "tabular_classification")
    app = page("data", "flowers")
    app.selectbox[0].select("iris")
    button(app, "Add sample").click().run(timeout=120)
    assert not app.exception
    assert Workspace.current().project("flowers").dataset == "iris"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Rows"] == "150" and metrics["Classes"] == "3"


def test_the_data_page_offers_the_templates_own_sample_first(workspace):
    for template, sample in [("text_classification", "texts"), ("resnet_blocks", "objects")]:
        new_project(template, template)
        assert page("data", template).selectbox[0].value == sample


def test_the_data_page_configures_the_model_from_the_data(workspace):
    new_project("flowers", "tabular_classification")
    add_iris()
    Workspace.current().project("flowers").use_dataset("iris")
    app = page("data", "flowers")
    assert app.warning, "the template's head does not fit three classes yet"
    button(app, "Configure the model from the data").click().run()
    assert not app.exception
    doc = Workspace.current().project("flowers").graph()
    output = next(node for node in doc.nodes if node.component == "Output")
    assert output.settings["units"] == 3
    assert app.success[0].value.startswith("The model's inputs and outputs fit")


def test_the_data_page_profile_reads_as_text_not_json(workspace):
    new_project("flowers", "tabular_classification")
    add_iris()
    Workspace.current().project("flowers").use_dataset("iris")
    app = page("data", "flowers")
    summaries = dict(app.dataframe[0].value[["column", "summary"]].itertuples(index=False))
    assert not any("{" in text or "}" in text for text in summaries.values()), summaries
    assert summaries["target"] == "setosa 33%, versicolor 33%, virginica 33%"
    assert summaries["sepal_length_cm"] == "4.3 to 7.9, mean 5.84"
    assert app.selectbox[-1].label == "Chart of a column"


def test_a_setting_edited_in_the_model_page_is_saved_and_changes_the_shape(workspace):
    new_project()
    app = page("model", "digits")
    node_select = next(s for s in app.selectbox if s.label == "Selected node")
    node_select.select("dense").run()
    units = next(n for n in app.number_input if n.label == "units")
    units.set_value(40).run()
    assert not app.exception
    nodes = Workspace.current().project("digits").graph().nodes
    dense = next(node for node in nodes if node.id == "dense")
    assert dense.settings["units"] == 40
    assert any("Output (None, 40)" in c.value for c in app.caption)


def test_two_panel_edits_sent_in_one_rerun_are_both_saved_and_undone_one_at_a_time(workspace):
    """A user who changes a second setting before the page has drawn the first one's result:
    the browser sends both in one rerun."""
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    next(n for n in app.number_input if n.label == "units").set_value(40)
    next(t for t in app.text_input if t.label == "Label").input("first dense")
    app.run()
    assert not app.exception
    dense = Workspace.current().project("digits").graph().node("dense")
    assert (dense.settings["units"], dense.label) == (40, "first dense")
    button(app, "Undo").click().run()
    dense = Workspace.current().project("digits").graph().node("dense")
    assert (dense.settings["units"], dense.label) in {(64, "first dense"), (40, None)}  # one


def test_undo_brings_back_the_graph_before_the_edit(workspace):
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    next(n for n in app.number_input if n.label == "units").set_value(40).run()
    button(app, "Undo").click().run()
    nodes = Workspace.current().project("digits").graph().nodes
    dense = next(node for node in nodes if node.id == "dense")
    assert dense.settings.get("units", 64) == 64
    assert next(n for n in app.number_input if n.label == "units").value == 64  # shown, too


def test_a_panel_edit_draws_its_own_widget_anew_and_leaves_the_others(workspace):
    """The others keep their keys, so what the user is typing in one of them while the edit's
    rerun is drawn stays, and its edit counts."""
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    label = next(t for t in app.text_input if t.label == "Label").key
    units = next(n for n in app.number_input if n.label == "units").key
    next(n for n in app.number_input if n.label == "units").set_value(40).run()
    assert next(t for t in app.text_input if t.label == "Label").key == label
    assert next(n for n in app.number_input if n.label == "units").key != units
    next(t for t in app.text_input if t.label == "Label").input("typed meanwhile").run()
    assert Workspace.current().project("digits").graph().node("dense").label == "typed meanwhile"


def test_the_node_panel_shows_a_change_made_elsewhere(workspace):
    """A widget whose value changes by an undo or outside the page is drawn anew with it (its
    key is made from the value)."""
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()

    def shown() -> tuple[str, int]:
        label = next(t for t in app.text_input if t.label == "Label").value
        return label, next(n for n in app.number_input if n.label == "units").value

    before = shown()
    next(t for t in app.text_input if t.label == "Label").input("hidden layer").run()
    next(n for n in app.number_input if n.label == "units").set_value(96).run()
    assert shown() == ("hidden layer", 96)
    button(app, "Undo").click().run()
    assert shown() == ("hidden layer", 64)
    button(app, "Undo").click().run()
    assert shown() == before == ("Dense 64", 64)
    project = Workspace.current().project("digits")  # changed in another tab, or by the CLI:
    project.save_graph(set_settings(set_label(project.graph(), "dense", "wide"), "dense",
                                    {"units": 80}))  # fmt: skip
    app.run()
    assert shown() == ("wide", 80)


def test_the_model_page_reads_the_graph_again_only_when_another_writer_changed_it(
    workspace, monkeypatch
):
    """Its own edits and undos keep the session's history current: reading the graph again
    took 10 ms an edit, twice, on an imported NASNetMobile."""
    new_project()
    app = page("model", "digits")
    reads = []
    real = Project.graph
    monkeypatch.setattr(Project, "graph", lambda self, *text: reads.append(1) or real(self, *text))
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    next(n for n in app.number_input if n.label == "units").set_value(40).run()
    button(app, "Undo").click().run()
    button(app, "Redo").click().run()
    assert not app.exception and reads == []
    assert real(Workspace.current().project("digits")).node("dense").settings["units"] == 40
    project = Workspace.current().project("digits")
    project.save_graph(set_settings(real(project), "dense", {"units": 80}))  # another tab
    app.run()
    assert reads and next(n for n in app.number_input if n.label == "units").value == 80
    assert button(app, "Undo").disabled  # the other tab's change is not this session's to undo


def test_a_graph_that_could_not_be_saved_is_said_and_not_shown_as_saved(workspace, monkeypatch):
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()

    def full(self, doc):
        raise OSError(28, "No space left on device")

    room = Project.save_graph
    monkeypatch.setattr(Project, "save_graph", full)
    next(n for n in app.number_input if n.label == "units").set_value(40).run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "The graph was not saved: [Errno 28] No space left on device"
    ]
    assert button(app, "Undo").disabled  # nothing this session saved to undo
    monkeypatch.setattr(Project, "save_graph", room)  # room again: an edit is saved
    next(n for n in app.number_input if n.label == "units").set_value(41).run()
    assert Workspace.current().project("digits").graph().node("dense").settings["units"] == 41
    assert not app.error and not button(app, "Undo").disabled


def test_a_panel_edit_of_a_value_changed_since_is_dropped_and_shows_the_graphs(workspace):
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    project = Workspace.current().project("digits")
    other_tab = set_label(project.graph(), "flatten", "relabelled in another tab")
    project.save_graph(set_settings(other_tab, "dense", {"units": 80}))
    next(n for n in app.number_input if n.label == "units").set_value(96).run()
    assert project.graph().node("dense").settings["units"] == 80  # the other tab's
    assert next(n for n in app.number_input if n.label == "units").value == 80  # and shown


def test_a_component_added_from_the_palette_follows_the_selected_node(workspace):
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("flatten").run()
    assert not [b for b in app.button if (b.key or "").startswith("add:")], "categories closed"
    app.session_state["palette:Regularization"] = True  # what opening the category does
    app.run()
    assert {"Dropout", "SpatialDropout2D"} <= {b.label for b in app.button}
    assert "Dense" not in {b.label for b in app.button}, "only the open category is drawn"
    button(app, "Dropout").click().run()
    doc = Workspace.current().project("digits").graph()
    search = next(t for t in app.text_input if t.label == "Search components")
    search.input("lstm").run()  # a search opens the categories it finds
    assert "LSTM" in {b.label for b in app.button}
    added = [node.id for node in doc.nodes if node.component == "Dropout" and node.id != "dropout"]
    assert len(added) == 1
    assert any(e.source == "flatten" and e.target == added[0] for e in doc.edges)


def test_a_fix_from_the_problems_panel_is_applied(workspace):
    new_project("flowers", "tabular_classification")
    add_iris()
    Workspace.current().project("flowers").use_dataset("iris")
    app = page("model", "flowers")
    fixes = [b for b in app.button if (b.key or "").startswith("fix:")]
    assert fixes, "a head that does not fit the data has a fix"
    before = Workspace.current().project("flowers").graph()
    fixes[0].click().run()
    assert not app.exception
    assert Workspace.current().project("flowers").graph() != before


def test_block_buttons_and_a_problems_select_take_one_script_run(workspace, monkeypatch):
    """Open block, Back to the model, Expand block and a problem's Select act in their
    callbacks, so the run that follows draws their result: one run, not two."""
    from ui import session

    new_project("resnet", "resnet_blocks")
    app = page("model", "resnet")
    runs = []
    real = session.step_bar
    monkeypatch.setattr(session, "step_bar", lambda *a, **k: runs.append(1) or real(*a, **k))

    def press(label: str) -> None:
        runs.clear()
        button(app, label).click().run()
        assert not app.exception and len(runs) == 1, (label, len(runs))

    next(s for s in app.selectbox if s.label == "Selected node").select("stage1").run()
    press("Open block")
    assert any("Inside block" in m.value for m in app.markdown)
    press("Back to the model")
    assert next(s for s in app.selectbox if s.label == "Selected node").value == "stage1"
    press("Expand block")
    graph = Workspace.current().project("resnet").graph()
    assert "stage1" not in {n.id for n in graph.nodes} and "stage2" in {n.id for n in graph.nodes}
    output = next(n.id for n in graph.nodes if n.component == "Output")
    unfed = [e for e in graph.edges if e.target != output]  # the Output's arity: an error
    Workspace.current().project("resnet").save_graph(graph.model_copy(update={"edges": unfed}))
    app.run()
    picks = [b for b in app.button if (b.key or "").startswith("pick:")]
    assert picks, "the Output's problem names it"
    runs.clear()
    picks[0].click().run()
    assert len(runs) == 1 and not app.exception
    assert next(s for s in app.selectbox if s.label == "Selected node").value == output


def test_the_blocks_tab_makes_a_block_in_one_run_and_says_why_it_cannot(workspace, monkeypatch):
    from ui import session

    new_project()
    app = page("model", "digits")
    app.session_state["model:tab"] = "Blocks"
    app.run()
    runs = []
    real = session.step_bar
    monkeypatch.setattr(session, "step_bar", lambda *a, **k: runs.append(1) or real(*a, **k))
    project = Workspace.current().project("digits")
    before = project.graph()
    app.multiselect(key="blocks:picked").set_value(["dense", "dropout"])
    app.text_input(key="blocks:name").set_value("1 bad name")
    app.run()
    runs.clear()
    button(app, "Make block").click().run()
    assert len(runs) == 1 and project.graph() == before  # refused, and said in the tab:
    assert any("1 bad name" in e.value for e in app.tabs[2].error), [e.value for e in app.error]
    app.text_input(key="blocks:name").set_value("head")
    runs.clear()
    button(app, "Make block").click().run()
    assert len(runs) == 1 and not app.exception
    assert "head" in project.graph().blocks and not app.tabs[2].error


def test_re_layout_places_the_nodes_in_layers_and_undo_takes_it_back(workspace):
    from app.graph.edit import move
    from app.graph.layout import layered_layout

    new_project()
    project = Workspace.current().project("digits")
    project.save_graph(move(project.graph(), "dense", 900, -400))
    before = project.graph()
    app = page("model", "digits")
    button(app, "Re-layout").click().run()
    assert not app.exception
    assert project.graph() == layered_layout(before) != before
    button(app, "Undo").click().run()
    assert project.graph() == before


def test_the_code_tab_shows_the_whole_model_and_a_custom_node_is_edited_in_place(workspace):
    new_project()
    app = page("model", "digits")
    assert not app.code  # only the open tab (Problems) runs
    app.session_state["model:tab"] = "Code"
    app.run()
    assert any("def build_model() -> keras.Model:" in code.value for code in app.code)
    app.session_state["palette:Advanced"] = True  # the palette's category, opened
    app.run()
    button(app, "Custom").click().run()
    app.session_state["model:code"] = "Selected node"  # the new node's code
    app.run()
    custom = next(node.id for node in Workspace.current().project("digits").graph().nodes
                  if node.component == "Custom")  # fmt: skip
    app.text_area[0].set_value("x = inputs[0]\nreturn x *\n")
    button(app, "Apply code").click().run()
    doc = Workspace.current().project("digits").graph()
    assert next(n for n in doc.nodes if n.id == custom).code == "x = inputs[0]\nreturn x *\n"
    assert any(custom in error.value for error in app.error)
    app.text_area[0].set_value("return inputs[0] * 2\n")  # the form drawn for the new graph
    button(app, "Apply code").click().run()
    doc = Workspace.current().project("digits").graph()
    assert next(n for n in doc.nodes if n.id == custom).code == "return inputs[0] * 2\n"
    assert not [e for e in app.error if "code line" in e.value]


def test_a_shared_graphs_code_shows_on_the_model_page_and_runs_only_once_trusted(workspace):
    import json

    marker = workspace / "ran"
    project = new_project("shared", "tabular_classification")
    data = json.loads(project.graph().to_json())
    first = data["nodes"][0]["id"]
    code = f"open({str(marker)!r}, 'w').close()\nreturn inputs[0]"
    data["nodes"].append({"id": "theirs", "component": "Custom", "code": code})
    for edge in data["edges"]:
        if edge["source"] == first:
            edge["source"] = "theirs"
    data["edges"].append({"source": first, "target": "theirs"})
    # copied in by hand, not edited in the app: untrusted
    (project.folder / "graph.json").write_text(json.dumps(data))
    app = page("model", "shared")
    assert not marker.exists()
    assert any(code == block.value for block in app.code)
    button(app, "Trust this code").click().run()
    assert not app.exception
    assert marker.exists()  # trusted, it ran to find the node's shape


def test_the_train_page_asks_for_a_dataset_first(workspace):
    new_project()
    app = page("train", "digits")
    assert "Choose the project's dataset first." in app.info[0].value


def ready_to_train():
    """The tabular template fitted to iris, as a project ready for the Train page."""
    new_project("flowers", "tabular_classification")
    add_iris()
    project = Workspace.current().project("flowers")
    project.use_dataset("iris")
    project.save_graph(Workspace.current().dataset("iris").configure(project.graph())[0])
    return project


def test_training_settings_are_checked_and_saved_in_the_project(workspace):
    project = ready_to_train()
    app = page("train", "flowers")
    next(n for n in app.number_input if n.label == "epochs").set_value(3)
    next(n for n in app.number_input if n.label == "learning_rate").set_value(0.01)
    button(app, "Save settings").click().run()
    assert not app.exception
    saved = json.loads((project.folder / "training.json").read_text())
    assert saved == {"epochs": 3, "learning_rate": 0.01}  # what differs from the defaults


def test_invalid_training_settings_are_refused_with_their_reason(workspace):
    project = ready_to_train()
    app = page("train", "flowers")
    next(n for n in app.number_input if n.label == "learning_rate").set_value(-1.0)
    button(app, "Save settings").click().run()
    assert "learning_rate" in app.error[0].value
    assert not (project.folder / "training.json").exists()


def test_rendering_every_page_does_not_import_tensorflow(workspace):
    new_project()
    script = (
        "import sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"app = AppTest.from_file({ENTRY!r}, default_timeout=60)\n"
        "app.query_params['project'] = 'digits'\n"
        "app.run()\n"
        f"for name in {(*PAGES, 'playground')!r}:\n"
        f"    app.switch_page({str(ROOT / 'pages')!r} + f'/{{name}}.py').run()\n"
        "    assert not app.exception, (name, app.exception)\n"
        "    assert app.title[0].value.lower() in (name, 'layerflow'), name\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["False", "False"]


def project_of_run(trained, name: str, project: str = "trained"):
    """A project whose model is the one the trained run `name` trained, on the run's data."""
    from app.graph.document import load

    made = Workspace.current().create_project(project, load(trained.runs[name] / "graph.json"))
    made.use_dataset(trained.data[name])
    return made


def test_the_train_page_shows_a_finished_run_with_its_charts_and_layers(trained_workspace):
    project_of_run(trained_workspace, "image")
    app = page("train", "trained")
    run_id = trained_workspace.runs["image"].name
    run_select = next(s for s in app.selectbox if s.label == "Run")
    assert run_select.value == run_id
    assert "finished: epoch 2 of 2" in app.get("progress")[0].proto.text
    charts = app.get("plotly_chart")
    assert charts, "the training chart"
    figure = json.loads(charts[0].proto.spec)
    names = {trace.get("name") for trace in figure["data"]}
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "learning rate"} <= names
    layer = next(s for s in app.selectbox if s.label == "Layer (node)")
    assert "conv1" in layer.options
    layer.select("conv1").run()
    titles = [c.value for c in app.caption]
    assert "kernel histogram over time" in titles and "feature maps (first sample)" in titles


def test_the_test_page_shows_the_report_of_a_tested_run(trained_workspace):
    from app.evaluate import suite as testsuite

    project_of_run(trained_workspace, "classification")
    run = trained_workspace.runs["classification"]
    impossible = {"metric": "accuracy", "op": ">=", "value": 2.0}
    report = testsuite.run_suite(run, {"parity_formats": [], "gates": [impossible]})
    app = page("test", "trained")
    assert app.error[0].value.startswith("The run failed its gates or checks")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["accuracy"] == f"{report['summary']['accuracy']:.4g}"
    baselines = report["baselines"]  # headlined above the other figures
    assert app.subheader[0].value == "Your model vs the baseline"
    assert metrics["your model: accuracy"] == f"{report['summary']['accuracy']:.4g}"
    assert metrics[f"best baseline: {baselines['best']}"] == f"{baselines['best_value']:.4g}"
    shown = next(m for m in app.metric if m.label == "your model: accuracy")
    assert shown.proto.delta == f"{baselines['margin']:+.4g} vs {baselines['best']}"
    gates = app.dataframe[1].value  # [0] is the gates editor
    assert list(gates["metric"]) == ["accuracy"] and not gates["passed"].iloc[0]
    confusion = json.loads(app.get("plotly_chart")[0].proto.spec)["data"][0]
    assert confusion["type"] == "heatmap"
    assert confusion["x"] == ["setosa", "versicolor", "virginica"]
    assert sum(map(sum, confusion["z"])) == len(Workspace.current().dataset("iris").splits["test"])


def test_the_export_page_refuses_an_untested_run_and_lists_nothing_yet(trained_workspace):
    project_of_run(trained_workspace, "classification")
    app = page("export", "trained")
    assert "no test report" in app.warning[0].value
    assert next(s for s in app.selectbox if s.label == "Format").options[0] == "Keras (.keras)"


def test_the_runs_page_lists_and_compares_runs_and_deletes_one(trained_workspace):
    project_of_run(trained_workspace, "classification")
    app = page("runs", "trained")
    next(t for t in app.toggle if "every model" in t.label).set_value(True).run()
    table = app.dataframe[0].value
    assert set(table["run"]) == {folder.name for folder in trained_workspace.runs.values()}
    chosen = next(m for m in app.multiselect if m.label == "Compare runs")
    chosen.set_value([trained_workspace.runs["classification"].name,
                      trained_workspace.runs["binary"].name]).run()  # fmt: skip
    assert not app.exception
    assert any(c.value.startswith("What differs: ") and "epochs" in c.value and "graph" in c.value
               for c in app.caption)  # fmt: skip
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in app.get("plotly_chart")]
    assert "loss" in titles and "val_accuracy" in titles
    victim = trained_workspace.runs["binary"]
    next(s for s in app.selectbox if s.label == "Run").select(victim.name).run()
    next(c for c in app.checkbox if c.label.startswith("Yes, delete run")).check().run()
    button(app, "Delete run").click().run()
    assert not app.exception
    assert not victim.exists()


def test_a_refused_setting_says_why_and_leaves_the_graph_as_it_was(workspace):
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("conv1").run()
    before = Workspace.current().project("digits").graph()
    next(t for t in app.text_input if t.label == "kernel_size").input("[-3, 3]").run()
    assert not app.exception
    assert [e.value for e in app.error if "kernel_size" in e.value], [e.value for e in app.error]
    assert Workspace.current().project("digits").graph() == before


def test_a_setting_typed_and_a_button_pressed_in_one_rerun_both_count(workspace):
    """The browser sends a changed setting and a button pressed before the next run in one
    rerun: the button acts on the graph with the setting, not on the graph as last drawn."""
    from app.graph.edit import expand_block

    new_project("resnet", "resnet_blocks")
    app = page("model", "resnet")
    next(s for s in app.selectbox if s.label == "Selected node").select("stage1").run()
    before = Workspace.current().project("resnet").graph()
    repeat = before.node("stage1").settings.get("repeat", 1) + 1
    next(n for n in app.number_input if n.label == "repeat").set_value(repeat)
    button(app, "Expand block").click().run()
    assert not app.exception
    wanted = expand_block(set_settings(before, "stage1", {"repeat": repeat}), "stage1")
    assert Workspace.current().project("resnet").graph() == wanted


def test_a_panel_edit_of_a_node_another_tab_replaced_under_its_id_is_dropped(workspace):
    """Another tab put a node of another component where the selected one was, with the same id
    and label: the label typed for the old node is not given to the new one."""
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    project = Workspace.current().project("digits")
    doc = project.graph()
    replaced = [n.model_copy(update={"component": "Dropout", "settings": {}})
                if n.id == "dense" else n for n in doc.nodes]  # fmt: skip
    project.save_graph(doc.model_copy(update={"nodes": replaced}))
    next(t for t in app.text_input if t.label == "Label").input("the dense layer").run()
    assert not app.exception
    assert project.graph().node("dense").label == doc.node("dense").label
    next(t for t in app.text_input if t.label == "Label").input("the dropout").run()  # redrawn
    assert project.graph().node("dense").label == "the dropout"  # for the node it now shows


def test_undo_after_another_tabs_change_leaves_that_change(workspace):
    """Undo undoes this tab's edits on the graph as it was; once another tab has saved a change,
    there is nothing here to undo, and pressing the Undo drawn before does not overwrite it."""
    new_project()
    app = page("model", "digits")
    next(s for s in app.selectbox if s.label == "Selected node").select("dense").run()
    next(n for n in app.number_input if n.label == "units").set_value(40).run()
    project = Workspace.current().project("digits")
    project.save_graph(set_label(project.graph(), "flatten", "from another tab"))
    button(app, "Undo").click().run()
    assert not app.exception
    graph = project.graph()
    assert graph.node("flatten").label == "from another tab"
    assert graph.node("dense").settings["units"] == 40
    assert button(app, "Undo").disabled


def test_a_fix_another_tab_applied_already_is_not_applied_twice(workspace):
    from app.graph.edit import apply_fix
    from tests.graphs import chain

    doc = chain(("x", "Input", {"shape": [8, 8, 3]}), ("c", "Conv2D", {"filters": 4}),
                ("d", "Dense", {"units": 4}), ("y", "Output", {"units": 2}))  # fmt: skip
    project = Workspace.current().create_project("maps", doc)
    app = page("model", "maps")
    fix = button(app, "Insert GlobalAveragePooling2D before it")
    offered = next(p.fix for p in analyze(doc).problems if p.fix and p.fix.insert)
    project.save_graph(apply_fix(project.graph(), offered))  # another tab took the fix
    elsewhere = project.graph()
    fix.click().run()
    assert not app.exception
    assert project.graph() == elsewhere  # one GlobalAveragePooling2D, not two
    assert any("no longer has that problem" in e.value for e in app.error)
