"""The Serve config file: in sync with the settings, valid for Serve, and `serve run`-able."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from loadtest import photos as f
from service.app import serve_config
from service.settings import Settings
from tests.integration.conftest import REPO, free_port

pytestmark = pytest.mark.integration
CONFIG = REPO / "deploy" / "serve_config.yaml"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RECOGNIZE_")}


def test_committed_config_is_what_the_settings_generate() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "service.cli", "config"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert generated == CONFIG.read_text(), "run `recognize config > deploy/serve_config.yaml`"


def test_config_validates_with_serves_own_schema() -> None:
    schema = ServeDeploySchema.model_validate(yaml.safe_load(CONFIG.read_text()))
    (app,) = schema.applications
    assert app.import_path == "service.app:build_app"
    names = {d.name: d for d in app.deployments}
    assert (
        names["Classifier"].max_ongoing_requests
        >= names["Classifier"].user_config["max_batch_size"]
    )


def test_missing_model_is_a_clear_start_up_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve"],
        cwd=REPO,
        env={**clean_env(), "RECOGNIZE_MODEL_PATH": str(missing), "RECOGNIZE_PORT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert str(missing) in result.stderr and "recognize export" in result.stderr


def test_serve_run_with_the_config_file_flips_ready(tmp_path: Path) -> None:
    """`serve run` on a generated config serves the app; /readyz is 503 until warmed up."""
    port = free_port()
    # 16 warm-up shapes make the not-ready window wide enough to observe on any machine.
    # auth_disabled travels in the application's args, as any setting would.
    document = serve_config(Settings(port=port, max_batch_size=16, auth_disabled=True))
    assert document["applications"][0]["args"]["auth_disabled"] is True
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(document))
    env = {**clean_env(), "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    serve_cli = Path(sys.executable).parent / "serve"
    log = tmp_path / "serve_run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(serve_cli), "run", str(path)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    seen: list[tuple[int, str | None]] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    r = client.get("/readyz")
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if r.status_code == 404:  # Serve's proxy before the app's routes exist
                    time.sleep(0.05)
                    continue
                code = r.json().get("error", {}).get("code") if r.status_code != 200 else None
                seen.append((r.status_code, code))
                if r.status_code == 200:
                    break
                time.sleep(0.05)
            assert seen and seen[-1] == (200, None), (seen[-5:], log.read_text()[-3000:])
            not_ready = [s for s in seen if s[0] != 200]
            assert (503, "not_ready") in not_ready, seen[:10]
            assert all(s == (503, "not_ready") for s in not_ready), seen
            # a request during warm-up would also have been a clean 503; now it is served
            r = client.post(
                "/recognize",
                files={"image": ("a.jpg", f.jpeg(), "image/jpeg")},
                data={"vin": "WDD2052041F123456"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["vin"]["expected_parent"] == "C-Class"
    finally:
        if process.poll() is None:
            # Only the CLI: it shuts Serve and its Ray down in order (signalling the whole
            # group would kill the raylet under it and stall that shutdown).
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def listening_pid(port: int) -> int | None:
    """The process with a listening TCP socket on 127.0.0.1:port (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                return int(pid)
        except OSError:
            continue
    return None


def test_default_local_layout_is_one_deployment_listening_itself(tmp_path: Path) -> None:
    """`recognize serve` on a CPU: one deployment decodes and classifies, and its replica owns
    the service's port (no Ray proxy in between); same answers alone and batched."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.integration.conftest import descendants, start_service, stop_service

    running = start_service(
        {
            "RECOGNIZE_MAX_BATCH_SIZE": "8",
            "RECOGNIZE_BATCH_WAIT_TIMEOUT_S": "0.05",
        },
        tmp_path / "serve.log",
    )
    try:
        with running.client() as client:
            assert len(client.get("/v1/model").json()["classes"]) == 64
            images = [f.jpeg(400 + 10 * i, 600, seed=i) for i in range(8)]

            def post(img: bytes) -> dict:
                r = client.post(
                    "/recognize",
                    files={"image": ("a.jpg", img, "image/jpeg")},
                    data={"vin": "WDD2052041F123456"},
                )
                assert r.status_code == 200, r.text
                return r.json()

            alone = [post(img) for img in images]
            with ThreadPoolExecutor(max_workers=8) as pool:
                together = list(pool.map(post, images))
        for a, b in zip(alone, together, strict=True):
            assert a["prediction"]["class_id"] == b["prediction"]["class_id"]
            assert a["prediction"]["confidence"] == pytest.approx(
                b["prediction"]["confidence"], abs=1e-4
            )
        assert max(r["batch_size"] for r in together) > 1
        replicas = " ".join(descendants(running.process.pid).values())
        assert "ServeReplica:recognize:Ingress" in replicas
        assert "ServeReplica:recognize:Classifier" not in replicas  # one deployment only
        owner = listening_pid(int(running.base_url.rsplit(":", 1)[1]))
        assert owner is not None
        assert "ServeReplica:recognize:Ingress" in descendants(running.process.pid)[owner]
    finally:
        stop_service(running.process)
