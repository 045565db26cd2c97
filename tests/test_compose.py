"""Static checks of the compose files and docker/Dockerfile (no Docker needed). The stack itself is
built and started for real by `make compose-check` (docker/compose_check.py: root, GBs, minutes;
not part of `make test`); these keep the files consistent with the project and with what that run
showed: service graph, auth, volumes, version pins, settings names, the host-network override."""

from __future__ import annotations

import importlib.metadata
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
HOST_NET = ROOT / "docker-compose.host-network.yml"
MINIO = ROOT / "docker-compose.minio.yml"
OVERRIDE = ROOT / "docker-compose.override.yml"  # read by a plain `docker compose up`
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

RAY_SERVICES = ("ray-head", "ray-worker", "ray-worker-gpu")
CPU_IMAGE_SERVICES = ("ray-head", "ray-worker", "api")  # one image, one build
RESULTS_VOLUME = "results"
REQUIRED_REF = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*):\?[^}]+\}$")  # ${VAR:?message}: no default
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|ACCESS_KEY|ROOT_USER")
DEFAULT_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):-([^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def host_net() -> dict:
    return yaml.safe_load(HOST_NET.read_text())


@pytest.fixture(scope="module")
def minio() -> dict:
    return yaml.safe_load(MINIO.read_text())


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


def with_defaults(text: str) -> str:
    """`${VAR:-default}` -> default: what compose substitutes with nothing set."""
    return DEFAULT_REF.sub(lambda m: m.group(2), text)


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


def test_expected_services(services, minio):
    assert set(services) == {"ray-head", "ray-worker", "ray-worker-gpu", "api"}
    assert {"minio", "minio-init"} <= set(minio["services"])


def test_headers_say_what_was_started():
    text = COMPOSE.read_text()
    assert "NOT STARTED ON OUR MACHINES" not in text
    assert "RUN FOR REAL by `make compose-check`" in text
    # ... and what was not
    assert "NOT started there: the GPU worker" in text
    assert "Built and run for real by `make compose-check`" in DOCKERFILE.read_text()
    assert "NOT STARTED by `make compose-check`" in MINIO.read_text()


def test_ray_head(services):
    head = services["ray-head"]
    cmd = command_text(head)
    assert cmd.startswith("ray start --head") and "--port=6379" in cmd and "--block" in cmd
    assert "ray health-check" in " ".join(head["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["ray-worker", "ray-worker-gpu", "api"])
def test_workers_and_api_wait_for_the_head(services, name):
    assert depends_on(services[name]).get("ray-head") == "service_healthy"
    assert "--address=ray-head:6379" in command_text(services[name])


def test_api_starts_without_minio(services):
    """MinIO is optional (docker-compose.minio.yml): nothing in the main file waits for it."""
    for name, svc in services.items():
        assert not {"minio", "minio-init"} & set(depends_on(svc)), name
        assert not any(k.startswith("AWS_") for k in env_of(svc)), name


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
    for arg in ("RAY_VERSION", "JAX_VERSION", "BASE_IMAGE"):  # hence the same Python and Ray everywhere
        assert gpu["build"]["args"][arg] == first["build"]["args"][arg]


def test_base_image_is_a_build_arg_defaulting_to_the_official_image(services):
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert dockerfile_arg("BASE_IMAGE") == "python:${PYTHON_VERSION}-slim-bookworm"
    default = dockerfile_arg("BASE_IMAGE").replace("${PYTHON_VERSION}", dockerfile_arg("PYTHON_VERSION"))
    # compose passes the same default unless MUTRANSFER_BASE_IMAGE says otherwise
    for name in (*CPU_IMAGE_SERVICES, "ray-worker-gpu"):
        arg = services[name]["build"]["args"]["BASE_IMAGE"]
        assert arg == "${MUTRANSFER_BASE_IMAGE:-%s}" % default, name
    # the script that builds a stand-in from Debian packages exists and is executable
    script = ROOT / "docker" / "local_base.sh"
    assert script.stat().st_mode & 0o111
    assert "debootstrap" in script.read_text() and "docker import" in script.read_text().replace("$docker", "docker")


def test_no_syntax_directive():
    """`# syntax=docker/dockerfile:1` makes BuildKit pull the frontend from Docker Hub, which a host
    without Docker Hub (as where compose-check ran) cannot."""
    assert not re.search(r"^#\s*syntax\s*=", DOCKERFILE.read_text(), re.M | re.I)


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
    # the pinned Ray and jax with the project's requirements (and the extras'), then the project
    assert re.search(r'python requirements\.py "\$\{EXTRAS\}" > requirements\.txt', text)
    assert re.search(r'pip install "ray\[tune\]==\$\{RAY_VERSION\}" "jax==\$\{JAX_VERSION\}" -r requirements\.txt', text)
    assert re.search(r'pip install --no-deps "\.\$\{EXTRAS\}"', text)
    assert "dataset-fashion-mnist" in text
    # same minor Python as the virtualenv the pins come from
    assert dockerfile_arg("PYTHON_VERSION") == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_requirements_script_lists_pyproject():
    import subprocess
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = subprocess.run([sys.executable, str(ROOT / "docker" / "requirements.py"), "[gpu]"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [*project["dependencies"], *project["optional-dependencies"]["gpu"]]
    bad = subprocess.run([sys.executable, str(ROOT / "docker" / "requirements.py"), "[nope]"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "no extra 'nope'" in bad.stderr


def test_dockerignore_lets_through_what_the_dockerfile_copies():
    import tomllib

    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"  # everything else stays out of the context
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} | {"pyproject.toml", "README.md", "docker/requirements.py"} == allowed


def _all_services(compose, minio) -> dict:
    return {**compose["services"], **{f"minio-file:{k}": v for k, v in minio["services"].items()}}


@pytest.mark.parametrize("name", [*RAY_SERVICES, "api"])
def test_ray_token_auth_everywhere(services, name):
    env = env_of(services[name])
    assert env["RAY_AUTH_MODE"] == "token"
    m = REQUIRED_REF.match(env["RAY_AUTH_TOKEN"])
    assert m and m.group(1) == "RAY_AUTH_TOKEN", env["RAY_AUTH_TOKEN"]


def test_api_token(services):
    m = REQUIRED_REF.match(env_of(services["api"])["MUTRANSFER_API_TOKEN"])
    assert m and m.group(1) == "MUTRANSFER_API_TOKEN"


@pytest.mark.parametrize("path", [COMPOSE, MINIO, HOST_NET], ids=lambda p: p.name)
def test_no_literal_secrets(path):
    doc = yaml.safe_load(path.read_text())
    for name, svc in doc["services"].items():
        for k, v in env_of(svc).items():
            if SECRET_NAME.search(k) and k != "RAY_AUTH_MODE":
                assert REQUIRED_REF.match(v), f"{name}: {k} must come from ${{VAR:?...}}, not {v!r}"
        for k, v in ((svc.get("build") or {}).get("args") or {}).items():
            assert not SECRET_NAME.search(k), f"{name}: build arg {k} would bake a secret into the image"
    text = path.read_text()
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
    # published by compose's default override file, which the host-network file replaces
    assert "ports" not in api
    published = yaml.safe_load(OVERRIDE.read_text())["services"]
    assert set(published) == {"api"} and set(published["api"]) == {"ports"}
    assert published["api"]["ports"] == ["${MUTRANSFER_PORT:-8000}:8000"]
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


@pytest.mark.parametrize("path", [COMPOSE, MINIO, HOST_NET], ids=lambda p: p.name)
def test_api_environment_names_are_documented_settings(path):
    doc = importlib.import_module("service.settings").__doc__
    documented = set(re.findall(r"\bMUTRANSFER_[A-Z_]+\b", doc))
    api = yaml.safe_load(path.read_text())["services"]["api"]
    used = {k for k in env_of(api) if k.startswith("MUTRANSFER_")}
    assert used, "the api sets no MUTRANSFER_* variable?"
    assert used <= documented, f"not in service/settings.py's docstring: {sorted(used - documented)}"


def test_minio_bucket_and_s3_results_root(services, minio):
    ms = minio["services"]
    assert ms["minio"]["image"].startswith("minio/minio:")
    init = ms["minio-init"]
    assert init["image"].startswith("minio/mc:")
    assert depends_on(init) == {"minio": "service_healthy"}
    assert init.get("restart") == "no"
    m = re.search(r"mc mb --ignore-existing store/([a-z0-9][a-z0-9.-]+)", command_text(init))
    assert m, "minio-init does not create a bucket"
    bucket = m.group(1)
    # the S3 results root the file documents lives in that bucket, on that MinIO service
    uri = urlsplit(minio["x-results-s3"])
    assert uri.scheme == "s3" and uri.netloc == bucket
    endpoint = urlsplit(dict(p.split("=", 1) for p in uri.query.split("&"))["endpoint_override"])
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    # with this file, the API's results root is that one, and it waits for the bucket
    assert env_of(ms["api"])["MUTRANSFER_RESULTS"] == minio["x-results-s3"]
    assert depends_on(ms["api"])["minio-init"] == "service_completed_successfully"
    # every Ray node and the API get MinIO's credentials for S3; only services of the main file
    minio_env = env_of(ms["minio"])
    for name in (*RAY_SERVICES, "api"):
        env = env_of(ms[name])
        assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"], name
    assert set(ms) - {"minio", "minio-init"} <= set(services)


def test_s3_root_keeps_registry_off_object_store(minio):
    """With the documented s3:// results root the registry has no default path (SQLite needs a
    POSIX filesystem), which is why the api sets MUTRANSFER_REGISTRY explicitly."""
    from sweeps.registry import default_path

    assert default_path(minio["x-results-s3"]) is None


# --- the host-network override (how compose-check starts the stack) ---------------------------

def test_host_network_override_covers_every_service(services, host_net):
    over = host_net["services"]
    assert set(over) == set(services)
    for name, svc in over.items():
        assert svc["network_mode"] == "host", name
        assert svc["build"] == {"network": "host"}, name  # apt and pip in the build need a network
        assert not set(svc) & {"image", "volumes", "ports", "depends_on", "profiles"}, name  # only networking


def test_host_network_ray_stays_on_loopback(host_net):
    """Every Ray node binds and advertises 127.0.0.1: the default node IP is 127.0.0.1 and every node
    is started by sweeps.ray_node, which keeps that address (plain `ray start` rewrites it to the
    machine's outward address; with 127.0.0.2 the GCS listened on all interfaces in `make
    compose-check`). The check itself fails on any non-loopback listener the stack opens."""
    text = HOST_NET.read_text()
    assert set(re.findall(r"\$\{RAY_NODE_IP:-([^}]+)\}", text)) == {"127.0.0.1"}
    for name, svc in host_net["services"].items():
        assert command_text(svc).count("python -m sweeps.ray_node start") == 1, name
        assert "ray start" not in command_text(svc), name
    assert "--host 127.0.0.1" in command_text(host_net["services"]["api"])
    check = (ROOT / "docker" / "compose_check.py").read_text()
    assert "non_loopback_listeners() - before" in check and 'NET = {"RAY_NODE_IP": "127.0.0.1"' in check


@pytest.mark.parametrize("name", ["ray-head", "ray-worker", "ray-worker-gpu", "api"])
def test_host_network_nodes_never_share_a_port(services, host_net, name):
    """One network namespace for all nodes: every port but the head's is picked by the kernel, the
    dashboard agent's fixed default (52365) and the worker ports included; the rest of each
    command is the main file's."""
    base = command_text(services[name])
    over = with_defaults(command_text(host_net["services"][name])).replace("python -m sweeps.ray_node start", "ray start")
    ip = "127.0.0.1"
    for flag in ("--node-manager-port=0", "--object-manager-port=0", "--dashboard-agent-listen-port=0",
                 "--min-worker-port=0", "--max-worker-port=0", f"--node-ip-address={ip}"):
        assert flag in over, flag
    assert "ray-head" not in over  # names do not resolve on the host network
    extra = re.compile(r"--(node-ip-address|node-manager-port|object-manager-port|dashboard-agent-listen-port|"
                       r"min-worker-port|max-worker-port|port|address|host)[= ]\S+")
    strip = lambda s: " ".join(extra.sub("", s).split())  # noqa: E731
    assert strip(with_defaults(base)) == strip(over)
    if name == "ray-head":
        assert "--port=6379" in over
        # no Ray Client server flag: the image has ray[tune], not ray[client], and `ray start` refuses
        # --ray-client-server-port without it (the first real start showed it)
        assert "ray-client-server-port" not in over
        assert f"{ip}:6379" in " ".join(host_net["services"][name]["healthcheck"]["test"]).replace(
            "${RAY_NODE_IP:-127.0.0.1}", ip).replace("${RAY_PORT:-6379}", "6379")
    else:
        assert f"--address={ip}:6379" in over


def test_host_network_api_address(host_net):
    api = host_net["services"]["api"]
    assert with_defaults(env_of(api)["MUTRANSFER_RAY_ADDRESS"]) == "127.0.0.1:6379"
    assert "--address 127.0.0.1:6379" in with_defaults(command_text(api))
    assert "127.0.0.1:8000/health" in with_defaults(" ".join(api["healthcheck"]["test"]))


# --- make compose-check --------------------------------------------------------------------------

def test_compose_check_is_not_part_of_make_test():
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^compose-check:", mk, re.M)
    assert "docker/compose_check.py" in mk
    test_rule = re.search(r"^test:(.*)$", mk, re.M).group(1)
    assert "compose-check" not in test_rule


def test_compose_check_pages_are_routes_of_the_app(tmp_path):
    """The pages the check fetches exist in the app (a renamed route would otherwise show up
    only in a run as root)."""
    sys.path.insert(0, str(ROOT / "docker"))
    try:
        import compose_check
    finally:
        sys.path.remove(str(ROOT / "docker"))
    from service.app import create_app
    from service.settings import from_env

    routes = set(create_app(from_env({"MUTRANSFER_RESULTS": str(tmp_path)})).openapi()["paths"])
    for page in compose_check.PAGES:
        path = page.split("?")[0].replace("{sid}", "{sweep_id}")
        assert path in routes, page
    assert compose_check.COMPOSE_FILES == ("docker-compose.yml", "docker-compose.host-network.yml")
    assert compose_check.SPEC.exists()
