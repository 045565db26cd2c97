"""Static checks of docker-compose.yml and docker/Dockerfile (no Docker needed: none of our machines
has a Docker engine, so the stack has never been started there; these keep the file consistent
with the project: service graph, auth, volumes, version pins, settings names)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"

RAY_SERVICES = ("ray-head", "ray-worker", "ray-worker-gpu")
CPU_IMAGE_SERVICES = ("ray-head", "ray-worker", "api")  # one image, one build
RESULTS_VOLUME = "results"
REQUIRED_REF = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*):\?[^}]+\}$")  # ${VAR:?message}: no default
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|ACCESS_KEY|ROOT_USER")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_on(svc: dict) -> dict[str, str]:
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {d: "service_started" for d in dep}
    return {k: (v or {}).get("condition", "service_started") for k, v in dep.items()}


def command_text(svc: dict) -> str:
    """The command as the container gets it (compose turns `$$` into a literal `$`)."""
    cmd = svc.get("command") or ""
    return (" ".join(cmd) if isinstance(cmd, list) else cmd).replace("$$", "$")


def volume_targets(svc: dict) -> dict[str, str]:
    """Named volume (or bind source) -> container path."""
    out = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out[v["source"]] = v["target"]
        else:
            source, target = v.split(":")[:2]
            out[source] = target
    return out


def dockerfile_arg(name: str) -> str:
    m = re.search(rf"^ARG {name}=(\S+)\s*$", DOCKERFILE.read_text(), re.M)
    assert m, f"docker/Dockerfile has no `ARG {name}=...` default"
    return m.group(1)


def test_expected_services(services):
    assert {"ray-head", "ray-worker", "ray-worker-gpu", "api", "minio", "minio-init"} <= set(services)


def test_says_it_was_never_started_here():
    assert "NOT STARTED ON OUR MACHINES" in COMPOSE.read_text()
    assert "NOT built or run on our machines" in DOCKERFILE.read_text()


def test_ray_head(services):
    head = services["ray-head"]
    cmd = command_text(head)
    assert cmd.startswith("ray start --head") and "--port=6379" in cmd and "--block" in cmd
    assert "ray health-check" in " ".join(head["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["ray-worker", "ray-worker-gpu", "api"])
def test_workers_and_api_wait_for_the_head(services, name):
    assert depends_on(services[name]).get("ray-head") == "service_healthy"
    assert "--address=ray-head:6379" in command_text(services[name])


def test_cpu_workers_scale(services):
    w = services["ray-worker"]
    cmd = command_text(w)
    assert cmd.startswith("ray start --address=ray-head:6379") and "--block" in cmd
    # `docker compose up --scale ray-worker=N` needs no fixed name and no published host port.
    assert "container_name" not in w and "ports" not in w
    assert "profiles" not in w


def test_gpu_worker_only_in_gpu_profile_with_nvidia_reservation(services):
    gpu = services["ray-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] and ("count" in d or "device_ids" in d)
               for d in devices)
    assert env_of(gpu)["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    # no other service asks for a GPU or sits in a profile
    for name, svc in services.items():
        if name != "ray-worker-gpu":
            assert "profiles" not in svc, name
            assert "devices" not in str(svc.get("deploy", "")), name


def test_one_image_and_build_for_ray_and_api(services):
    first = services[CPU_IMAGE_SERVICES[0]]
    for name in CPU_IMAGE_SERVICES:
        svc = services[name]
        assert svc["image"] == first["image"], name
        assert svc["build"] == first["build"], name
        assert svc["build"]["dockerfile"] == "docker/Dockerfile" and svc["build"]["context"] == "."
        assert svc["build"]["args"].get("EXTRAS", "") == ""
    gpu = services["ray-worker-gpu"]
    assert gpu["image"] != first["image"]  # a different tag: it has jax[cuda12] in it
    assert gpu["build"]["dockerfile"] == first["build"]["dockerfile"]
    assert gpu["build"]["context"] == first["build"]["context"]
    assert gpu["build"]["args"]["EXTRAS"] == "[gpu]"
    for arg in ("RAY_VERSION", "JAX_VERSION"):  # hence the same Ray everywhere
        assert gpu["build"]["args"][arg] == first["build"]["args"][arg]


def test_gpu_extra_exists():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("jax[cuda12]") for d in extras["gpu"])


def test_version_pins_match_the_virtualenv(services):
    ray_v, jax_v = importlib.metadata.version("ray"), importlib.metadata.version("jax")
    assert dockerfile_arg("RAY_VERSION") == ray_v
    assert dockerfile_arg("JAX_VERSION") == jax_v
    for name in (*CPU_IMAGE_SERVICES, "ray-worker-gpu"):
        args = services[name]["build"]["args"]
        assert args["RAY_VERSION"] == ray_v, name
        assert args["JAX_VERSION"] == jax_v, name


def test_dockerfile_installs_project_ray_and_fashion_mnist():
    text = DOCKERFILE.read_text()
    assert re.search(r'pip install "ray\[tune\]==\$\{RAY_VERSION\}" "jax==\$\{JAX_VERSION\}" "\.\$\{EXTRAS\}"', text)
    assert "dataset-fashion-mnist" in text
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim-bookworm$", text, re.M)
    # same minor Python as the virtualenv the pins come from
    import sys

    assert dockerfile_arg("PYTHON_VERSION") == f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize("name", [*RAY_SERVICES, "api"])
def test_ray_token_auth_everywhere(services, name):
    env = env_of(services[name])
    assert env["RAY_AUTH_MODE"] == "token"
    m = REQUIRED_REF.match(env["RAY_AUTH_TOKEN"])
    assert m and m.group(1) == "RAY_AUTH_TOKEN", env["RAY_AUTH_TOKEN"]


def test_api_token(services):
    m = REQUIRED_REF.match(env_of(services["api"])["MUTRANSFER_API_TOKEN"])
    assert m and m.group(1) == "MUTRANSFER_API_TOKEN"


def test_no_literal_secrets(services):
    for name, svc in services.items():
        for k, v in env_of(svc).items():
            if SECRET_NAME.search(k) and k != "RAY_AUTH_MODE":
                assert REQUIRED_REF.match(v), f"{name}: {k} must come from ${{VAR:?...}}, not {v!r}"
        for k, v in ((svc.get("build") or {}).get("args") or {}).items():
            assert not SECRET_NAME.search(k), f"{name}: build arg {k} would bake a secret into the image"
    text = COMPOSE.read_text()
    assert "minioadmin" not in text
    assert not re.search(r"\$\{[A-Z_]*(TOKEN|PASSWORD|SECRET)[A-Z_]*:?-", text), "a secret with a default"


def test_results_volume_same_path_everywhere(compose, services):
    assert RESULTS_VOLUME in compose["volumes"]
    targets = {name: volume_targets(svc).get(RESULTS_VOLUME) for name, svc in services.items()}
    used = {n: t for n, t in targets.items() if t}
    assert set(used) >= {*RAY_SERVICES, "api"}
    assert len(set(used.values())) == 1, used
    (path,) = set(used.values())
    assert env_of(services["api"])["MUTRANSFER_RESULTS"] == "${MUTRANSFER_RESULTS:-%s}" % path


def test_api_command_and_health(services):
    api = services["api"]
    cmd = command_text(api)
    assert "mutransfer serve" in cmd
    serve = cmd[cmd.index("mutransfer serve"):]
    for flag in ("--host 0.0.0.0", "--port 8000", "--address ray-head:6379", '--results "$MUTRANSFER_RESULTS"'):
        assert flag in serve, flag
    # The API's drivers attach to the cluster, so the API container is a Ray node with no resources.
    assert re.search(r"ray start --address=ray-head:6379 --num-cpus=0 --num-gpus=0\b", cmd)
    assert any(p.endswith(":8000") for p in api["ports"])
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert env_of(api)["MUTRANSFER_DRIVERS"] == "local"
    assert env_of(api)["MUTRANSFER_RAY_ADDRESS"] == "ray-head:6379"


def test_registry_on_a_local_volume_of_the_api(compose, services):
    api = services["api"]
    reg = env_of(api)["MUTRANSFER_REGISTRY"]
    assert "://" not in reg and reg.startswith("/")
    mounts = volume_targets(api)
    holder = [v for v, target in mounts.items() if reg.startswith(target.rstrip("/") + "/")]
    assert holder and holder[0] != RESULTS_VOLUME and holder[0] in compose["volumes"]
    assert '--registry "$MUTRANSFER_REGISTRY"' in command_text(api)


def test_api_environment_names_are_documented_settings(services):
    doc = importlib.import_module("service.settings").__doc__
    documented = set(re.findall(r"\bMUTRANSFER_[A-Z_]+\b", doc))
    used = {k for k in env_of(services["api"]) if k.startswith("MUTRANSFER_")}
    assert used, "the api sets no MUTRANSFER_* variable?"
    assert used <= documented, f"not in service/settings.py's docstring: {sorted(used - documented)}"


def test_minio_bucket_and_s3_results_root(compose, services):
    assert services["minio"]["image"].startswith("minio/minio:")
    init = services["minio-init"]
    assert init["image"].startswith("minio/mc:")
    assert depends_on(init) == {"minio": "service_healthy"}
    assert init.get("restart") == "no"
    m = re.search(r"mc mb --ignore-existing store/([a-z0-9][a-z0-9.-]+)", command_text(init))
    assert m, "minio-init does not create a bucket"
    bucket = m.group(1)
    # the S3 results root the file documents lives in that bucket, on that MinIO service
    uri = urlsplit(compose["x-results-s3"])
    assert uri.scheme == "s3" and uri.netloc == bucket
    endpoint = urlsplit(dict(p.split("=", 1) for p in uri.query.split("&"))["endpoint_override"])
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    assert f"MUTRANSFER_RESULTS={compose['x-results-s3']}" in COMPOSE.read_text()
    # the API waits for the bucket, and it and the workers use MinIO's credentials for S3
    assert depends_on(services["api"])["minio-init"] == "service_completed_successfully"
    minio_env = env_of(services["minio"])
    for name in (*RAY_SERVICES, "api"):
        env = env_of(services[name])
        assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"], name


def test_s3_root_keeps_registry_off_object_store(compose):
    """With the documented s3:// results root the registry has no default path (SQLite needs a
    POSIX filesystem), which is why the api sets MUTRANSFER_REGISTRY explicitly."""
    from sweeps.registry import default_path

    assert default_path(compose["x-results-s3"]) is None
