"""The one settings object: the classifier's options declared once, strict Serve-config args."""

from __future__ import annotations

import pytest

from service.app import build_app
from service.core.imaging import Limits
from service.core.verdict import Thresholds
from service.inference.session import ClassifierConfig
from service.settings import ClassifierOptions, Settings, settings_from_args


def test_the_classifier_options_are_one_declaration() -> None:
    """Settings and the Classifier's user_config share fields, defaults and bounds."""
    options = ClassifierOptions.model_fields

    def declared(field: object) -> str:
        return repr(field)  # annotation, default, bounds and description

    for name, field in options.items():
        assert declared(Settings.model_fields[name]) == declared(field)
        assert declared(ClassifierConfig.model_fields[name]) == declared(field)
    assert set(ClassifierConfig.model_fields) == set(options)
    assert ClassifierConfig.model_validate(Settings().classifier_options()) == ClassifierConfig()


def test_the_user_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="max_batch_sise"):
        ClassifierConfig.model_validate({"max_batch_sise": 4})


def test_a_typo_in_the_serve_config_args_fails_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['max_batch_sise'\]"):
        build_app({"max_batch_sise": 4})
    with pytest.raises(ValueError, match="unknown setting"):
        settings_from_args({"match_treshold": 0.9})


def test_known_args_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOGNIZE_MAX_BATCH_SIZE", "4")
    assert Settings().max_batch_size == 4
    assert settings_from_args({"max_batch_size": 2}).max_batch_size == 2


def test_bad_values_still_name_their_rule() -> None:
    with pytest.raises(ValueError, match="must reach max_batch_size 8"):
        settings_from_args({"batch_buckets": [1, 2]})


def test_limits_and_thresholds_come_from_the_settings() -> None:
    settings = Settings(
        max_image_pixels=1_000_000, min_image_side=64, match_threshold=0.9, mismatch_threshold=0.7
    )
    assert settings.limits() == Limits(max_pixels=1_000_000, min_side=64)
    assert settings.decision_rule(None).thresholds == Thresholds(match=0.9, mismatch=0.7)


def test_the_local_node_gets_an_absolute_model_path() -> None:
    local = Settings(model_path="models/x.onnx").for_local_node()
    assert local.model_path.is_absolute() and local.model_path.name == "x.onnx"
