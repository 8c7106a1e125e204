"""The fuse report as a user reads it: quick-looks and tables without a reference, and a
warning when the shipped model was trained on the scene it is scored on."""
import json


def fuse(scene, tmp_path, **extra):
    import processing
    d0, d1 = scene.dates[:2]
    parameters = {"FINE_T1": scene.fine[d0], "COARSE_T1": scene.coarse[d0],
                  "COARSE_T2": scene.coarse[d1], "OUTPUT": str(tmp_path / "fused.tif"),
                  "REPORT": str(tmp_path / "fused.html")}
    parameters.update(extra)
    results = processing.run("stfusion:fuse", parameters)
    return (tmp_path / "fused.html").read_text(encoding="utf-8"), results


def test_report_without_reference_shows_pictures_and_tables_not_json(stfusion_provider,
                                                                     small_scene, tmp_path):
    html, _results = fuse(small_scene, tmp_path)
    assert html.count("<img") == 4  # fine t1, coarse t1, coarse t2, fused
    assert "Quick-looks" in html and "<th>model › training › epochs</th>" in html
    assert '{"' not in html and "[{" not in html
    assert "trained on this scene" not in html  # 160 px: not a training scene
    run = json.loads((tmp_path / "fused.html.json").read_text())["run"]
    assert run["trained_on_this_scene"] is None


def test_report_says_the_shipped_model_was_trained_on_this_scene(stfusion_provider,
                                                                  sample_scene, tmp_path):
    # the 480 px sample scene is one of the shipped model's training scenes
    html, results = fuse(sample_scene, tmp_path, REFERENCE=sample_scene.fine[
        sample_scene.dates[1]])
    assert "The model was trained on this scene" in html and "train_sample_480" in html
    assert html.index("trained on this scene") < html.index("Table 2")
    assert results["RMSE"] > 0
