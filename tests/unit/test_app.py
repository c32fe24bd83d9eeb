"""The Serve config document (service.app.serve_config): what a model rollout changes in it."""

from __future__ import annotations

from ray.serve.schema import ServeApplicationSchema

from service.app import serve_config
from service.settings import Settings


def _app(**settings: object) -> dict:  # type: ignore[type-arg]
    (app,) = serve_config(Settings(**settings))["applications"]  # type: ignore[arg-type]
    return dict(app)


def _code_version(app: dict) -> str:  # type: ignore[type-arg]
    # Serve's own test of whether a new config restarts the application's replicas.
    from ray.serve._private.deploy_utils import get_app_code_version

    return get_app_code_version(ServeApplicationSchema.model_validate(app))


def test_a_new_model_is_a_user_config_change_not_a_new_application() -> None:
    """Serve applies a user_config change to the running replicas (reconfigure); a change of
    `args` rebuilds the application and restarts every replica (tests/cluster/test_rollout.py)."""
    old = _app(model_path="/models/a-2026.11.onnx", max_batch_size=16, classifier_num_gpus=1)
    new = _app(model_path="/models/b-2026.12.onnx", max_batch_size=16, classifier_num_gpus=1)
    assert old["args"] == new["args"] == {"classifier_num_gpus": 1.0}
    assert _code_version(old) == _code_version(new)
    (classifier,) = [d for d in new["deployments"] if d["name"] == "Classifier"]
    assert classifier["user_config"]["model_path"] == "/models/b-2026.12.onnx"
    assert classifier["user_config"]["max_batch_size"] == 16


def test_settings_outside_the_user_config_still_travel_in_args() -> None:
    app = _app(match_threshold=0.9, request_timeout_s=12.0)
    assert app["args"] == {"match_threshold": 0.9, "request_timeout_s": 12.0}
    assert _code_version(app) != _code_version(_app(match_threshold=0.85, request_timeout_s=12.0))
