"""Builds the Serve application from settings; also what `serve run` and the Helm chart use.

``build_app(args)`` is a Serve application builder: ``import_path: service.app:build_app`` with
``args`` holding settings overrides (any ``Settings`` field). ``serve_config(settings)`` renders
the same application as a Serve config document, so the YAML file and the code cannot drift.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from service.api.ingress import Ingress
from service.inference.classifier import Classifier
from service.settings import ClassifierOptions, Settings, get_settings, settings_from_args

APP_NAME = "recognize"


def _logging(settings: Settings) -> dict[str, Any]:
    # Serve's own access line per call is off: the ingress writes one structured line per
    # request (tenant, status, verdict, latency), and the classifier's per-call line only
    # repeats it, each line costing the replica, Ray's log monitor and the driver CPU.
    return {"encoding": settings.log_encoding, "enable_access_log": False}


def deployment_options(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per-deployment Serve options, keyed by deployment name."""
    if settings.classifier_in_ingress:
        return {
            "Ingress": {
                "num_replicas": settings.classifier_replicas,
                "max_ongoing_requests": settings.max_pending_requests + 16,
                "ray_actor_options": {
                    "num_cpus": settings.classifier_num_cpus + settings.ingress_num_cpus,
                    "num_gpus": settings.classifier_num_gpus,
                },
                "user_config": settings.classifier_options(),
                "logging_config": _logging(settings),
            }
        }
    return {
        "Classifier": {
            "num_replicas": settings.classifier_replicas,
            "max_ongoing_requests": settings.classifier_max_ongoing_requests,
            # A bounded queue in front of the classifier: past it the ingress answers 503
            # 'overloaded' (BackPressureError) instead of letting requests pile up.
            "max_queued_requests": 4 * settings.classifier_max_ongoing_requests,
            # A replica whose GPU node died is found by Serve's next health check (a call to
            # a dead actor fails at once) or by the GCS missing the node's heartbeats, whichever
            # comes first: 1.6-12 s after the kill with Serve's default period of 10 s
            # (tests/cluster/test_worker_loss.py). Until then the ingress's router keeps
            # requests for it, which end in 504 at their deadline; every 2 s costs the
            # controller one small call per replica.
            "health_check_period_s": 2.0,
            "ray_actor_options": {
                "num_cpus": settings.classifier_num_cpus,
                "num_gpus": settings.classifier_num_gpus,
            },
            "user_config": settings.classifier_options(),
            "logging_config": _logging(settings),
        },
        "Ingress": {
            "num_replicas": settings.ingress_replicas,
            # The ingress only awaits I/O and a thread for decoding; Serve's default of 5
            # ongoing requests would cap the classifier's batches at 5. Above its own admission
            # limit (max_pending_requests), so the excess reaches it and gets a JSON 503.
            "max_ongoing_requests": settings.max_pending_requests + 16,
            "ray_actor_options": {"num_cpus": settings.ingress_num_cpus},
            "logging_config": _logging(settings),
        },
    }


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The Recognize application: Ingress → Classifier, or one Ingress that classifies.

    An unknown key in ``args`` fails here, at deploy time, naming the key."""
    return application(settings_from_args(args) if args else get_settings())


def application(settings: Settings) -> Application:
    options = deployment_options(settings)
    classifier = (
        None
        if settings.classifier_in_ingress
        else Classifier.options(**options["Classifier"]).bind()
    )
    return Ingress.options(**options["Ingress"]).bind(
        classifier, settings.model_dump(mode="json", exclude_unset=False)
    )


def serve_config(settings: Settings) -> dict[str, Any]:
    """The application as a Serve config document (`serve run` / KubeRay `serveConfigV2`)."""
    overrides = settings.model_dump(mode="json", exclude_defaults=True)
    overrides.pop("host", None)
    overrides.pop("port", None)
    overrides.pop("metrics_port", None)  # a node setting (`ray start --metrics-export-port`)
    overrides.pop("http_proxy", None)  # a node setting (the pods' environment, ray.httpProxy)
    # The Classifier's options travel in its user_config only. Serve's code version of an
    # application is a hash of its import path and args (get_app_code_version in
    # ray/serve/_private/deploy_utils.py): a new model file in args restarted every replica of
    # both deployments, the Classifier's stopped before its successor started (51 of 212
    # requests got 503 in a rollout under load on the cluster of tests/cluster), while a
    # user_config change reaches the running replica's reconfigure(), which swaps models.
    for name in ClassifierOptions.model_fields:
        overrides.pop(name, None)
    options = deployment_options(settings)
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": settings.host, "port": settings.port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "service.app:build_app",
                "args": overrides,
                "deployments": [{"name": name, **opts} for name, opts in options.items()],
            }
        ],
    }
