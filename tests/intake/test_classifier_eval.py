"""`helpdesk classifier eval` on real complaints: the airline tweets in ../shared/data (read from
there, never copied: their licence allows evaluation, not redistribution)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from services.cli import app

ROOT = Path(__file__).resolve().parents[2]
AIRLINE = ROOT.parent / "shared" / "data" / "airline_tweets_complaints.csv"
runner = CliRunner()


def airline_data() -> Path:
    if not AIRLINE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{AIRLINE} is missing: CI runs with ../shared beside the clone")
        pytest.skip(f"{AIRLINE} is not here (it lives in ../shared/data)")
    return AIRLINE


def run_eval(*args: str) -> dict:
    result = runner.invoke(app, ["classifier", "eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_airline_training_on_its_own_history_beats_the_tfidf_baseline_of_the_same_run():
    report = run_eval("--data", str(airline_data()), "--text-column", "text", "--label-column", "negativereason", "--cv", "5")
    assert report["n"] == 2000 and report["mode"] == "cv"
    # The shipped policy has none of the airline's categories: the model's figures are the headline.
    assert report["scored"] == "model" and len(report["unknown_labels"]) == 10
    assert report["accuracy"] > report["baseline_accuracy"] + 0.01, report
    assert report["macro_f1"] > report["baseline_macro_f1"], report
    assert 0 < report["classifiers"]["model"]["per_class"]["lost_luggage"]["recall"] <= 1


def test_the_configured_classifier_evaluated_on_complaints_without_keywords(tmp_path):
    items = YAML(typ="safe").load((ROOT / "tests" / "intake" / "keyword_free_complaints.yaml").read_text())["complaints"]
    data = tmp_path / "held_out.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["body", "label"])
        writer.writerows([item["text"], item["category"]] for item in items)
    report = run_eval("--data", str(data), "--text-column", "body", "--label-column", "label")
    assert report["mode"] == "configured" and report["scored"] == "combined" and report["n"] == len(items)
    assert report["classifiers"]["rules"]["accuracy"] == 0.0  # no keyword in any of them, by construction
    assert report["accuracy"] >= 0.80
    assert set(report["confusion"]) == {"rules", "model", "combined", "baseline"}


def test_eval_prints_tables_for_people(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("text,category\nmy parcel never came,delay\nyou charged me twice,billing\n", encoding="utf-8")
    result = runner.invoke(app, ["classifier", "eval", "--data", str(data)])
    assert result.exit_code == 0, result.output
    for heading in ("accuracy", "precision / recall per category", "confusion matrix, combined"):
        assert heading in result.stdout


def test_eval_refuses_a_missing_column_clearly(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("body,label\nx,y\n", encoding="utf-8")
    result = runner.invoke(app, ["classifier", "eval", "--data", str(data)])
    assert result.exit_code == 1
    assert "no column 'text', 'category'; it has 'body', 'label'" in result.output


def test_eval_and_train_mistakes_get_a_message_not_a_traceback(tmp_path):
    one_class = tmp_path / "one.csv"
    one_class.write_text("text,category\nlate again,delay\nstill not here,delay\n", encoding="utf-8")
    few = tmp_path / "few.csv"
    few.write_text("text,category\nlate again,delay\nyou charged me twice,billing\nstill not here,delay\n", encoding="utf-8")
    for args, code, message in (
        (["--data", str(few), "--cv", "1"], 2, "--cv needs at least 2 folds"),
        (["--data", str(few), "--cv", "5"], 1, "cannot evaluate:"),
        (["--data", str(one_class), "--train", str(one_class)], 1, "at least two categories"),
    ):
        result = runner.invoke(app, ["classifier", "eval", *args])
        assert result.exit_code == code, result.output
        assert message in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["classifier", "train", "--output", str(tmp_path)])
    assert result.exit_code == 1 and "cannot write the artifact" in result.output
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*.partial"))


def test_csv_files_from_spreadsheets_and_empty_files(tmp_path):
    from services.intake.classifier.training import TrainingDataError, read_history
    from services.intake.policy import HistoryFile

    bom = tmp_path / "excel.csv"
    bom.write_bytes("\ufefftext,category\nlate again,delay\n".encode("utf-8"))
    assert read_history(bom, HistoryFile(file="excel.csv")).labels == ["delay"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TrainingDataError, match="empty file: expected a header row"):
        read_history(empty, HistoryFile(file="empty.csv"))
