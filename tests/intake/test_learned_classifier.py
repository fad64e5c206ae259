"""The shipped classifier on complaints in customers' own words: the real model, trained on
config/classification_examples.yaml, never a mock."""
from __future__ import annotations

import csv
from pathlib import Path

import joblib
import numpy as np
import pytest
from ruamel.yaml import YAML

from services.intake.classifier.holder import ClassifierHolder
from services.intake.classifier.model import ArtifactError, TextClassifier, train
from services.intake.classifier.training import TrainingDataError, normalise_label, policy_training_data, read_history
from services.intake.domain import classify, complaint_text, matched_keywords
from services.intake.policy import ClassificationPolicy, HistoryFile
from shared.policy import PolicyError
from tests.builders import complaint

HERE = Path(__file__).resolve().parent
KEYWORD_FREE = YAML(typ="safe").load((HERE / "keyword_free_complaints.yaml").read_text(encoding="utf-8"))["complaints"]


def every_keyword(policy: ClassificationPolicy) -> list[str]:
    s = policy.severity
    return ([k for c in policy.categories for k in c.keywords] + s.safety.keywords + s.threat_to_leave.keywords
            + s.threat_to_sue.keywords + policy.temperament.anger_words)


def classified(policy, model, **fields):
    c = complaint(**fields)
    return classify(c, policy, 0, model.predict([complaint_text(c)])[0])


def test_the_keyword_free_set_really_has_no_keywords(shipped_policy):
    words = every_keyword(shipped_policy)
    assert len(KEYWORD_FREE) >= 60
    assert [c["text"][:50] for c in KEYWORD_FREE if matched_keywords(c["text"], words)] == []


def test_the_category_is_right_for_four_in_five_complaints_without_a_single_keyword(shipped_policy, shipped_classifier):
    right = [classified(shipped_policy, shipped_classifier, channel=c["channel"], subject="", description=c["text"]).category
             == c["category"] for c in KEYWORD_FREE]
    assert sum(right) / len(right) >= 0.80, f"{sum(right)} of {len(right)} right"


def test_a_service_the_company_does_not_provide_is_not_a_wrong_install(shipped_policy, shipped_classifier):
    r = classified(shipped_policy, shipped_classifier, subject="Sunday",
                   description="I asked for Sunday installation and was told you simply don't provide that service")
    assert r.category == "service_not_offered"


def test_a_kettle_smelling_of_burning_plastic_is_a_critical_defect(shipped_policy, shipped_classifier):
    r = classified(shipped_policy, shipped_classifier, subject="Kettle",
                   description="The kettle started giving off a smell of burning plastic and tripped the fuse")
    assert (r.category, r.severity) == ("defect", "critical")


def test_the_man_at_the_till_rolling_his_eyes_is_staff_behaviour(shipped_policy, shipped_classifier):
    r = classified(shipped_policy, shipped_classifier, channel="in_person", subject="",
                   description="The man at the till rolled his eyes and told me to read the sign")
    assert (r.category, r.decided_by) == ("staff_behaviour", "model")
    assert any(reason.startswith("category staff_behaviour: model ") and "nearest examples: '" in reason for reason in r.reasons)


def test_a_public_post_with_photos_of_a_smashed_suitcase_is_p1(shipped_policy, shipped_classifier):
    r = classified(shipped_policy, shipped_classifier, channel="social", public=True, subject="",
                   description="Look at what your baggage handlers did to my suitcase, photos attached. Smashed.")
    assert (r.category, r.priority) == ("damaged_in_transit", "P1")


def test_complaints_in_other_languages(shipped_policy, shipped_classifier):
    texts = {
        "defect": "Die Waschmaschine macht seit gestern nichts mehr, das Display bleibt dunkel.",
        "delay": "Mon colis devait arriver lundi, nous sommes vendredi et toujours rien.",
        "staff_behaviour": "La dependienta se rió de mí y me dio la espalda.",
    }
    got = {want: shipped_classifier.predict([text])[0].category for want, text in texts.items()}
    assert got == {want: want for want in texts}


def test_training_is_reproducible(shipped_policy, embedding_table):
    examples, _ = policy_training_data(HERE.parents[1] / "config" / "classification.yaml", shipped_policy)
    first = train(examples.texts, examples.labels, embedding_table)
    second = train(examples.texts, examples.labels, embedding_table)
    assert first.version == second.version
    probe = [c["text"] for c in KEYWORD_FREE[:20]]
    assert np.allclose([p.confidence for p in first.predict(probe)], [p.confidence for p in second.predict(probe)])


def test_the_shipped_artifact_is_trained_on_the_shipped_examples(shipped_policy, shipped_classifier, embedding_table):
    examples, _ = policy_training_data(HERE.parents[1] / "config" / "classification.yaml", shipped_policy)
    assert all(n >= 10 for n in shipped_classifier.trained_on.values())
    assert set(shipped_classifier.categories) == set(shipped_policy.category_names)
    assert shipped_classifier.version == train(examples.texts, examples.labels, embedding_table).version, \
        "the artifact is stale: run `make model`"


# ---------- the artifact ----------
@pytest.fixture
def small_model(embedding_table):
    texts = ["the parcel never came", "still waiting for delivery", "you charged me twice", "wrong amount on my card"]
    return train(texts, ["delay", "delay", "billing", "billing"], embedding_table)


def test_an_artifact_round_trips(tmp_path, small_model, embedding_table):
    path = small_model.save(tmp_path / "c.joblib")
    again = TextClassifier.load(path, embedding_table)
    assert again.version == small_model.version
    assert again.predict(["where is my parcel"])[0].category == "delay"


@pytest.mark.parametrize("content, message", [
    (None, "no classifier artifact: run `helpdesk classifier train`"),
    (b"not a model at all", "not a classifier artifact"),
])
def test_a_missing_or_corrupt_artifact_is_refused_clearly(tmp_path, embedding_table, content, message):
    path = tmp_path / "c.joblib"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        TextClassifier.load(path, embedding_table)


def test_an_artifact_of_another_embedding_table_is_refused(tmp_path, small_model, embedding_table):
    path = small_model.save(tmp_path / "c.joblib")
    payload = joblib.load(path)
    payload["table_version"] = "0000"
    dict(payload["pipeline"].named_steps["features"].transformer_list)["meaning"].table_version = "0000"
    joblib.dump(payload, path)
    with pytest.raises(ArtifactError, match="trained with embedding table 0000"):
        TextClassifier.load(path, embedding_table)


def test_intake_hot_reloads_a_retrained_artifact_and_keeps_the_last_good_one(tmp_path, small_model, embedding_table):
    path = small_model.save(tmp_path / "c.joblib")
    refused: list[str] = []
    holder = ClassifierHolder(path, embedding_table, check_every=0, on_refused=refused.append)
    assert holder.current().version == small_model.version
    path.write_bytes(b"half a file")
    assert holder.current().version == small_model.version
    assert "not a classifier artifact" in refused[0] and holder.last_error
    retrained = train(["late again", "no delivery yet", "double charge", "billing error", "rude clerk", "he was rude"],
                      ["delay", "delay", "billing", "billing", "staff_behaviour", "staff_behaviour"], embedding_table)
    retrained.save(path)
    assert holder.current().version == retrained.version and holder.last_error is None


def test_intake_does_not_start_without_its_artifact(tmp_path, embedding_table):
    with pytest.raises(PolicyError, match="run `helpdesk classifier train`"):
        ClassifierHolder(tmp_path / "none.joblib", embedding_table)


# ---------- training data ----------
def test_history_labels_are_normalised_to_category_names(tmp_path):
    path = tmp_path / "history.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["body", "reason"], ["late again", "Late Flight"], ["", "Bad Flight"], ["meh", "Can't Tell"]])
    data = read_history(path, HistoryFile(file=str(path), text_column="body", label_column="reason"))
    assert (data.texts, data.labels) == (["late again", "meh"], ["late_flight", "cant_tell"])
    assert normalise_label("  Flight Attendant Complaints ") == "flight_attendant_complaints"


def test_history_with_a_label_the_policy_lacks_is_refused_naming_the_file(tmp_path, shipped_policy):
    (tmp_path / "ex.yaml").write_text("examples:\n  delay: ['late']\n  billing: ['charged twice']\n")
    (tmp_path / "h.csv").write_text("text,category\nmy bag is gone,Lost Luggage\n")
    policy = shipped_policy.model_copy(update={"model": shipped_policy.model.model_copy(
        update={"examples": "ex.yaml", "history": [HistoryFile(file="h.csv")]})})
    with pytest.raises(TrainingDataError, match=r"h\.csv: labels that are not categories of the policy: lost_luggage"):
        policy_training_data(tmp_path / "classification.yaml", policy)


def test_a_history_file_without_the_named_column_is_refused(tmp_path):
    (tmp_path / "h.csv").write_text("body,label\nx,y\n")
    with pytest.raises(TrainingDataError, match="no column 'text'"):
        read_history(tmp_path / "h.csv", HistoryFile(file="h.csv"))


def test_labels_the_policy_lacks_are_named_as_written_with_their_line(tmp_path, shipped_policy):
    from services.intake.classifier.training import check_labels

    path = tmp_path / "h.csv"
    path.write_text("text,category\nx,delay\ny,Verspätung\nz,Lost Luggage\nw,遅延\n", encoding="utf-8")
    data = read_history(path, HistoryFile(file="h.csv"))
    with pytest.raises(TrainingDataError) as refused:
        check_labels(data, shipped_policy, str(path))
    message = str(refused.value)
    assert "lost_luggage ('Lost Luggage' on line 4)" in message and "verspatung ('Verspätung' on line 3)" in message
    assert "(nothing usable) ('遅延' on line 5)" in message
    assert "category names are lower-case ASCII letters" in message


def test_a_model_section_added_to_a_running_intake_opens_the_classifier(tmp_path, small_model, embedding_table):
    from services.intake.service import Intake
    from shared.policy import PolicyHolder

    from tests.builders import complaint as make

    config = (HERE.parents[1] / "config" / "classification.yaml").read_text(encoding="utf-8")
    without = config[:config.index("\nmodel:")] + "\n" + config[config.index("# The CRM's own categories"):]
    policy_file = tmp_path / "classification.yaml"
    policy_file.write_text(without, encoding="utf-8")
    holder = PolicyHolder(policy_file, ClassificationPolicy, check_every=0)
    artifact = small_model.save(tmp_path / "c.joblib")
    intake = Intake(runtime=None, policy=holder, open_classifier=lambda: ClassifierHolder(artifact, embedding_table))
    parcel = make(subject="", description="where is my parcel")
    assert intake.predictions([parcel]) == [None]
    policy_file.write_text(config, encoding="utf-8")
    (opinion,) = intake.predictions([parcel])
    assert opinion is not None and opinion.category == "delay"
