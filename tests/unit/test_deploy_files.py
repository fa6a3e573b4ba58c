"""deploy/: every file parses, and every command, flag and setting it names exists.

No Docker engine or cluster runs here, so these checks keep compose.yaml, the
Kubernetes manifests, the Dockerfiles and mosquitto.conf in step with the real
CLIs and settings classes: a renamed flag, a typo in a ``LINEWATCH_*`` variable or
a volume declared under another name fails a test instead of a deployment.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from pydantic import ValidationError

from edge.settings import EdgeSettings

yaml = pytest.importorskip("yaml", reason="PyYAML (installed with mlflow) reads deploy/*.yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILES = {
    "linewatch-edge": DEPLOY / "docker" / "Dockerfile.edge",
    "linewatch-cloud": DEPLOY / "docker" / "Dockerfile.cloud",
}
EDGE_GRPC_PORT = 50051
# Typer vendors click; its UsageError (unknown option, bad value, missing option) is
# reached through the public BadParameter.
USAGE_ERROR: type[Any] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "UsageError"
)
UNRESOLVED = re.compile(r"\$\{[^}]*\}|\$\([^)]*\)")  # compose ${VAR} and Kubernetes $(VAR)
# serve's parameters that carry another name as EdgeSettings fields (edge/cli.py).
SERVE_PARAM_FIELDS = {
    "grpc_address": "grpc",
    "mqtt": "mqtt_url",
    "outbox": "outbox_dir",
    "advertise": "advertise_address",
}


# ---------------------------------------------------------------- readers


# Parsed once per run; tests only read what these return.
@functools.cache
def _yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    (data,) = _yaml_documents(COMPOSE)
    assert isinstance(data, dict)
    return data


def _k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in _yaml_documents(path):
                yield path, doc


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
    return instructions


def _instruction(path: Path, keyword: str) -> list[str]:
    return [rest for key, rest in _dockerfile(path) if key == keyword]


def _exec_form(path: Path, keyword: str) -> list[str]:
    (rest,) = _instruction(path, keyword)
    value = json.loads(rest)  # exec form: SIGTERM reaches the process, not a shell
    assert isinstance(value, list), f"{path.name}: {keyword} must be a JSON list"
    return [str(item) for item in value]


def _dockerfile_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in _instruction(path, "ENV"):
        for token in shlex.split(rest):
            name, _, value = token.partition("=")
            env[name] = value
    return env


def _image_dockerfile(image: str) -> Path | None:
    name = image.rsplit("/", 1)[-1].split(":")[0]
    return DOCKERFILES.get(name.removesuffix("-tensorrt"))


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


# ---------------------------------------------------------------- what runs where


@dataclass(frozen=True)
class Container:
    """One process a deploy file starts: its argv, environment and mounts."""

    where: str
    argv: list[str]
    env: dict[str, str]  # literal values; values from secrets are ""
    mounts: dict[str, str]  # container path -> "volume:<name>", "hostPath:<path>", ...
    spec: dict[str, Any]


def _compose_containers() -> list[Container]:
    compose = _compose()
    found = []
    for name, service in compose["services"].items():
        build = service.get("build")
        dockerfile = DEPLOY / build["context"] / build["dockerfile"] if build else None
        entrypoint = _as_list(service.get("entrypoint"))
        command = _as_list(service.get("command"))
        if dockerfile is not None and "entrypoint" not in service:  # a new one drops CMD
            entrypoint = _exec_form(dockerfile, "ENTRYPOINT")
            command = command or _exec_form(dockerfile, "CMD")
        env = _dockerfile_env(dockerfile) if dockerfile else {}
        raw_env = service.get("environment") or {}
        if isinstance(raw_env, list):
            raw_env = dict(item.partition("=")[::2] for item in raw_env)
        env |= {key: str(value) for key, value in raw_env.items()}
        mounts = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith((".", "/")) else "volume"
            mounts[target] = f"{kind}:{source}"
        for secret in service.get("secrets", []):
            mounts[secret["target"]] = f"secret:{secret['source']}"
        found.append(Container(f"compose {name}", entrypoint + command, env, mounts, service))
    return found


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc.get("kind") in {"Deployment", "DaemonSet", "StatefulSet", "Job"}:
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def _k8s_containers() -> list[Container]:
    """Containers of the base workloads (overlay patches are partial)."""
    found = []
    for path, doc in _k8s_documents():
        spec = _pod_spec(doc)
        if spec is None or "overlays" in path.parts:
            continue
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            dockerfile = _image_dockerfile(container.get("image", ""))
            command = container.get("command") or (
                _exec_form(dockerfile, "ENTRYPOINT") if dockerfile else []
            )
            env = {item["name"]: str(item.get("value", "")) for item in container.get("env", [])}
            mounts = {}
            for mount in container.get("volumeMounts", []):
                volume = volumes[mount["name"]]
                kind = next(key for key in volume if key != "name")
                mounts[mount["mountPath"]] = f"{kind}:{mount['name']}"
            where = f"{path.relative_to(DEPLOY)} {doc['metadata']['name']}/{container['name']}"
            argv = list(command) + list(container.get("args", []))
            found.append(Container(where, argv, env, mounts, container))
    return found


def _all_containers() -> list[Container]:
    return _compose_containers() + _k8s_containers()


def _program(container: Container) -> str:
    return Path(container.argv[0]).name if container.argv else ""


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


# ---------------------------------------------------------------- the real CLIs


@pytest.fixture(scope="module")
def programs() -> dict[str, Any]:
    """The click commands behind the console scripts, with every command registered."""
    from edge.cli import app as edge_app

    cloud_cli = pytest.importorskip(
        "cloud.cli.app", reason="the cloud CLI needs linewatch[cloud] installed"
    )
    pytest.importorskip("cloud.cli.commands", reason="the cloud commands need linewatch[cloud]")
    return {
        "linewatch": typer.main.get_command(cloud_cli.app),
        "linewatch-edge": typer.main.get_command(edge_app),
    }


def _parse(programs: dict[str, Any], where: str, argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse argv as the console script would, without running it.

    Returns:
        The command path ("linewatch-edge serve") and the parsed parameters.
    """
    command = programs[argv[0]]
    path, args = [argv[0]], list(argv[1:])
    context = command.context_class(command, info_name=argv[0])
    while hasattr(command, "list_commands"):
        runs_itself = getattr(command, "invoke_without_command", False)
        if runs_itself and (not args or args[0].startswith("-")):  # `linewatch deploy --name …`
            break
        assert args and not args[0].startswith("-"), f"{where}: {' '.join(path)} needs a command"
        sub = command.get_command(context, args[0])
        known = sorted(command.list_commands(context))
        assert sub is not None, f"{where}: {' '.join(path)} has no command {args[0]!r}: {known}"
        path.append(args.pop(0))
        command = sub
        context = command.context_class(command, info_name=path[-1], parent=context)
    try:
        parsed = command.make_context(path[-1], args, parent=context.parent)
    except USAGE_ERROR as exc:
        pytest.fail(f"{where}: `{' '.join(argv)}`: {exc.format_message()}")
    return " ".join(path), dict(parsed.params)


def _linewatch_containers() -> list[Container]:
    found = [c for c in _all_containers() if _program(c) in {"linewatch", "linewatch-edge"}]
    assert len(found) >= 6, f"expected the collector, the migration and edge nodes: {found}"
    return found


# ---------------------------------------------------------------- tests


def test_every_yaml_file_parses() -> None:
    paths = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert COMPOSE in paths and len(paths) >= 10
    for path in paths:
        documents = _yaml_documents(path)
        assert documents, f"{path}: no YAML document"
        for doc in documents:
            assert isinstance(doc, dict), f"{path}: a document is not a mapping"


def test_every_linewatch_command_uses_real_commands_and_flags(programs: dict[str, Any]) -> None:
    checked = set()
    for container in _linewatch_containers():
        command, _ = _parse(programs, container.where, [_program(container), *container.argv[1:]])
        checked.add(command)
    edge_default = _exec_form(DOCKERFILES["linewatch-edge"], "ENTRYPOINT") + _exec_form(
        DOCKERFILES["linewatch-edge"], "CMD"
    )
    checked.add(_parse(programs, "Dockerfile.edge", edge_default)[0])
    assert {"linewatch collect", "linewatch db upgrade", "linewatch-edge serve"} <= checked


def test_edge_commands_give_valid_edge_settings(programs: dict[str, Any]) -> None:
    for container in _linewatch_containers():
        if _program(container) != "linewatch-edge":
            continue
        command, params = _parse(programs, container.where, container.argv)
        assert command == "linewatch-edge serve", f"{container.where}: {command}"
        given = {
            SERVE_PARAM_FIELDS.get(name, name): value
            for name, value in params.items()
            if value is not None and name != "config" and not UNRESOLVED.search(str(value))
        }
        given |= {
            name.removeprefix("LINEWATCH_").lower(): value
            for name, value in container.env.items()
            if name.startswith("LINEWATCH_") and value and not UNRESOLVED.search(value)
        }
        try:  # extra="forbid": an unknown name fails as well as a bad value
            EdgeSettings(**given)
        except ValidationError as exc:
            pytest.fail(f"{container.where}: {exc}")


def _cloud_settings_names() -> set[str]:
    """The variables of the cloud processes deploy/ runs: the collector and the deployer.

    (RegistrySettings is left out: importing it imports MLflow, seconds for a unit test.)
    """
    pytest.importorskip("cloud.collector.settings", reason="needs linewatch[cloud]")
    from cloud.collector.settings import CollectorSettings
    from cloud.deploy.settings import DeploySettings

    names = set()
    for settings in (CollectorSettings, DeploySettings):
        names |= {f"LINEWATCH_{field.upper()}" for field in settings.model_fields}
    return names


def test_every_linewatch_variable_is_a_setting() -> None:
    edge_names = {f"LINEWATCH_{field.upper()}" for field in EdgeSettings.model_fields}
    cloud_names = _cloud_settings_names()
    allowed = {"linewatch-edge": edge_names, "linewatch": cloud_names}
    uses = [(c.where, _program(c), name) for c in _all_containers() for name in c.env]
    for program, dockerfile in (
        ("linewatch-edge", "Dockerfile.edge"),
        ("linewatch", "Dockerfile.cloud"),
    ):
        path = DEPLOY / "docker" / dockerfile
        uses += [(dockerfile, program, name) for name in _dockerfile_env(path)]
    for path, doc in _k8s_documents():  # overlay patches name no program: either side
        for container in (_pod_spec(doc) or {}).get("containers", []):
            uses += [(str(path), "", item["name"]) for item in container.get("env", [])]
    checked = [use for use in uses if use[2].startswith("LINEWATCH_")]
    assert len(checked) >= 8
    for where, program, name in checked:
        names = allowed.get(program, edge_names | cloud_names)
        assert name in names, f"{where}: {name} is no setting of {program or 'Linewatch'}"


def test_node_configs_are_valid_edge_settings() -> None:
    configs = [
        (key, text)
        for _, doc in _k8s_documents()
        if doc.get("kind") == "ConfigMap"
        for key, text in doc.get("data", {}).items()
        if key.endswith(".toml")
    ]
    assert configs, "no node.toml in a ConfigMap"
    for key, text in configs:
        try:
            settings = EdgeSettings(**tomllib.loads(text))
        except ValidationError as exc:
            pytest.fail(f"node config {key}: {exc}")
        assert settings.camera and settings.node != "node", f"{key}: name the camera and node"


def test_compose_references_only_what_it_declares() -> None:
    compose = _compose()
    services = compose["services"]
    kinds = ("volumes", "networks", "configs", "secrets")
    declared = {kind: set(compose.get(kind) or {}) for kind in kinds}
    used_volumes = set()
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: no image and no build"
        if "build" in service:
            dockerfile = DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]
            assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        else:
            tag = service["image"].rpartition(":")[2]
            assert ":" in service["image"] and tag != "latest", f"{name}: pin {service['image']}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: bind source {source} is missing"
            else:
                assert source in declared["volumes"], f"{name}: volume {source} is not declared"
                used_volumes.add(source)
        networks = service.get("networks", [])
        assert set(networks) <= declared["networks"], f"{name}: undeclared network {networks}"
        for config in service.get("configs", []):
            assert config["source"] in declared["configs"], f"{name}: config {config}"
        for secret in service.get("secrets", []):
            assert secret["source"] in declared["secrets"], f"{name}: secret {secret}"
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name}: depends on unknown service {dependency}"
            if rule["condition"] == "service_healthy":
                target = services[dependency]
                has_check = "healthcheck" in target or (
                    "build" in target
                    and _instruction(
                        DEPLOY / target["build"]["context"] / target["build"]["dockerfile"],
                        "HEALTHCHECK",
                    )
                )
                assert has_check, f"{name}: waits for {dependency} to be healthy; it has no check"
    assert used_volumes == declared["volumes"], "declared volumes nobody mounts (a typo?)"


def test_compose_variables_are_in_env_example() -> None:
    example = (DEPLOY / "env.example").read_text()
    defined = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert used, "compose.yaml interpolates nothing?"
    assert used <= defined, f"variables missing from deploy/env.example: {sorted(used - defined)}"


def test_nodes_keep_outbox_and_models_across_restarts() -> None:
    edges = [c for c in _all_containers() if _program(c) == "linewatch-edge"]
    assert len([c for c in edges if c.where.startswith("compose")]) >= 2
    for container in edges:
        outbox = _flag(container.argv, "--outbox") or container.env.get("LINEWATCH_OUTBOX_DIR")
        model_dir = _flag(container.argv, "--model-dir")
        for purpose, path in (("outbox", outbox), ("model dir", model_dir)):
            assert path is not None, f"{container.where}: no {purpose}"
            kind = container.mounts.get(path, "none")
            durable = kind.startswith(("volume:", "hostPath:", "persistentVolumeClaim:"))
            assert durable, f"{container.where}: {purpose} {path} is on {kind}, lost on restart"


def test_mosquitto_conf_keeps_qos1_messages_for_absent_collectors() -> None:
    from cloud.collector.settings import CollectorSettings

    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            settings.setdefault(key, []).append(value.strip())
    assert settings["persistence"] == ["true"]
    assert settings["max_queued_messages"] == ["0"]
    assert settings["allow_anonymous"] == ["false"]
    assert "1883" in settings["listener"]
    inflight = int(settings["max_inflight_messages"][0])
    receive_maximum = CollectorSettings.model_fields["receive_maximum"].default
    assert inflight == 0 or inflight >= receive_maximum, "the collector's batches would shrink"
    for commented in ("#listener 8883", "#cafile", "#certfile", "#keyfile"):
        assert commented in text
    # The files the broker needs live on the volumes compose mounts.
    mosquitto = _compose()["services"]["mosquitto"]
    targets = [volume.split(":")[1] for volume in mosquitto["volumes"]]
    assert "/mosquitto/config/mosquitto.conf" in targets
    # Logins and ACLs by the dynamic-security plugin, its file on a mounted volume.
    assert "password_file" not in settings and "acl_file" not in settings
    (plugin,) = settings["plugin"]
    assert plugin.endswith("mosquitto_dynamic_security.so")
    for path in (settings["persistence_location"][0], settings["plugin_opt_config_file"][0]):
        assert any(path.startswith(target + "/") for target in targets), f"{path} is not mounted"
    access = _compose()["services"]["mosquitto-access"]
    assert Path(settings["plugin_opt_config_file"][0]).name in " ".join(access["command"])
    bridge = (DEPLOY / "mosquitto" / "bridge.conf.example").read_text()
    assert re.search(r"^topic linewatch/# both 1$", bridge, flags=re.MULTILINE)
    assert re.search(r"^cleansession false$", bridge, flags=re.MULTILINE)


def _packaged_requirements(extra: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][extra]]


def test_edge_image_installs_edge_extra_and_never_torch_or_mlflow() -> None:
    path = DOCKERFILES["linewatch-edge"]
    (base,) = _instruction(path, "FROM")
    assert base == "python:3.11-slim"
    runs = " ".join(_instruction(path, "RUN"))
    assert re.search(r"pip install [^&]*\"?\.\[edge\]\"?", runs)
    assert not re.search(r"torch|mlflow|\[cloud\]", runs)
    heavy = [req for req in _packaged_requirements("edge") if re.match(r"(torch|mlflow)\b", req)]
    assert not heavy, f"pip install .[edge] would pull {heavy}"
    text = (path.parent / "Dockerfile.edge.dockerignore").read_text()
    ignore = [line.strip() for line in text.splitlines() if line.strip()[:1] not in {"", "#"}]
    assert ignore[0] == "*", "the edge build context is an allowlist"
    included = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    assert "cloud" not in included
    assert all((ROOT / item).exists() for item in included), included
    (user,) = _instruction(path, "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0


def test_edge_image_exposes_and_health_checks_its_grpc_port() -> None:
    path = DOCKERFILES["linewatch-edge"]
    exposed = {int(port) for rest in _instruction(path, "EXPOSE") for port in rest.split()}
    assert {EDGE_GRPC_PORT, 9100} <= exposed
    argv = _exec_form(path, "ENTRYPOINT") + _exec_form(path, "CMD")
    assert argv[:2] == ["linewatch-edge", "serve"]
    assert _flag(argv, "--grpc") == f"0.0.0.0:{EDGE_GRPC_PORT}"
    (healthcheck,) = _instruction(path, "HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert probe[:2] == ["python", "-c"]
    assert "grpc_health.v1" in probe[2] and f":{EDGE_GRPC_PORT}'" in probe[2]
    compile(probe[2], "HEALTHCHECK", "exec")


def test_cloud_image_takes_torch_pin_from_pyproject_and_cpu_index() -> None:
    path = DOCKERFILES["linewatch-cloud"]
    runs = " ".join(_instruction(path, "RUN")) + " ".join(_instruction(path, "ARG"))
    (pin,) = [req for req in _packaged_requirements("cloud") if req.startswith("torch")]
    assert f'"{pin}"' in runs, f"Dockerfile.cloud must install {pin} (pyproject's pin)"
    assert "download.pytorch.org/whl/cpu" in runs
    assert re.search(r"pip install [^&]*\"?\.\[cloud\]\"?", runs)
    assert _exec_form(path, "ENTRYPOINT") == ["linewatch"]


def _probe(container: Container, kind: str) -> tuple[str, list[str]]:
    """The Python code of an exec probe and the arguments it is given."""
    command = container.spec[kind]["exec"]["command"]
    assert command[:2] == ["python", "-c"], f"{container.where}: {kind} is not python -c"
    compile(command[2], kind, "exec")
    return command[2], command[3:]


def test_k8s_edge_probes_ask_grpc_health_over_mtls_on_the_served_port() -> None:
    from edge.server import MODEL_SERVICE_NAME

    edges = [c for c in _k8s_containers() if _program(c) == "linewatch-edge" and "serve" in c.argv]
    assert edges
    for container in edges:
        grpc_port = int(str(_flag(container.argv, "--grpc")).rpartition(":")[2])
        ports = {port["containerPort"] for port in container.spec["ports"]}
        assert grpc_port in ports, f"{container.where}: gRPC port {grpc_port} not declared"
        tls_dir = str(_flag(container.argv, "--tls-ca")).rpartition("/")[0] + "/"
        for kind, service in (("livenessProbe", MODEL_SERVICE_NAME), ("readinessProbe", "")):
            # Kubernetes' own gRPC probe cannot present a client certificate: mTLS refuses it.
            assert "grpc" not in container.spec[kind], f"{container.where}: {kind}"
            code, args = _probe(container, kind)
            assert f"'127.0.0.1:{grpc_port}'" in code and "grpc_health.v1" in code
            assert "ssl_channel_credentials" in code and f"'{tls_dir}'" in code
            # Alive with --model-dir while waiting for a model; ready once one is active.
            assert args == [service], f"{container.where}: {kind} asks for {args}"
        assert "--model-dir" in container.argv


def test_k8s_edge_runs_on_edge_nodes_with_limits_and_credentials_from_secrets() -> None:
    for path, doc in _k8s_documents():
        spec = _pod_spec(doc)
        if spec is None or "overlays" in path.parts or doc["metadata"]["name"] != "linewatch-edge":
            continue
        assert "node-role.kubernetes.io/edge" in spec["nodeSelector"]
        (edge,) = spec["containers"]
        assert {"requests", "limits"} <= set(edge["resources"])
        env = {item["name"]: item for item in edge["env"]}
        # Each node its own login: named as the node, its password the secret's key of that name.
        assert "LINEWATCH_MQTT_PASSWORD" not in env, "one password shared by every node"
        assert env["LINEWATCH_MQTT_USER"]["value"] == "$(NODE_NAME)"
        password_file = Path(env["LINEWATCH_MQTT_PASSWORD_FILE"]["value"])
        assert password_file.name == "$(NODE_NAME)"
        mounts = {mount["mountPath"]: mount["name"] for mount in edge["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        assert "secret" in volumes[mounts[str(password_file.parent)]]
        from edge.settings import EdgeSettings

        assert "mqtt_password_file" in EdgeSettings.model_fields
        return
    pytest.fail("no linewatch-edge workload in deploy/k8s/base")


def test_replicated_collectors_have_distinct_client_ids() -> None:
    for path, doc in _k8s_documents():
        spec = _pod_spec(doc)
        if spec is None or doc["spec"].get("replicas", 1) < 2:
            continue
        for container in spec["containers"]:
            argv = [*container.get("command", []), *container.get("args", [])]
            if argv[:2] == ["linewatch", "collect"]:
                client_id = _flag(argv, "--id") or ""
                assert "$(" in client_id, f"{path}: replicas share the MQTT client id {client_id!r}"


def test_referenced_secrets_and_configmaps_exist_or_are_documented() -> None:
    defined = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _k8s_documents()}
    readme = (K8S / "README.md").read_text()
    documented = {
        ("Secret" if kind == "secret generic" else "ConfigMap", name)
        for kind, name in re.findall(r"create (secret generic|configmap) ([a-z0-9-]+)", readme)
    }
    references = []
    for _, doc in _k8s_documents():
        spec = _pod_spec(doc) or {}
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                references.append(("ConfigMap", volume["configMap"]["name"]))
            if "secret" in volume:
                references.append(("Secret", volume["secret"]["secretName"]))
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for item in container.get("env", []):
                if "secretKeyRef" in item.get("valueFrom", {}):
                    references.append(("Secret", item["valueFrom"]["secretKeyRef"]["name"]))
    assert references
    missing = sorted(set(references) - defined - documented)
    assert not missing, f"referenced but neither in deploy/k8s nor in its README: {missing}"


def test_kustomizations_list_files_that_exist_and_forget_none() -> None:
    kustomizations = sorted(K8S.rglob("kustomization.yaml"))
    assert len(kustomizations) >= 2
    for path in kustomizations:
        kustomization = yaml.safe_load(path.read_text())
        listed = kustomization.get("resources", [])
        listed += [patch["path"] for patch in kustomization.get("patches", []) if "path" in patch]
        for item in listed:
            target = path.parent / item
            assert target.is_file() or (target / "kustomization.yaml").is_file(), (
                f"{path}: {item} does not exist"
            )
        on_disk = {p.name for p in path.parent.glob("*.yaml")} - {"kustomization.yaml"}
        assert on_disk <= set(listed), f"{path}: not listed: {sorted(on_disk - set(listed))}"


TLS_FLAGS = ("--tls-cert", "--tls-key", "--tls-ca")


def test_every_node_and_deployer_uses_mutual_tls_from_secrets() -> None:
    edge_default = _exec_form(DOCKERFILES["linewatch-edge"], "ENTRYPOINT") + _exec_form(
        DOCKERFILES["linewatch-edge"], "CMD"
    )
    assert all(flag in edge_default for flag in (*TLS_FLAGS, "--tls-crl")), edge_default
    dialling = [
        c
        for c in _linewatch_containers()
        if c.argv[1:2] == ["serve"] or "deploy" in c.argv[1:2] or "rollback" in c.argv[1:2]
    ]
    assert {_program(c) for c in dialling} == {"linewatch-edge", "linewatch"}
    for container in dialling:
        for flag in TLS_FLAGS:
            path = _flag(container.argv, flag)
            assert path is not None, f"{container.where}: no {flag}"
            folder = path.rpartition("/")[0]
            mount = container.mounts.get(path) or container.mounts.get(folder, "none")
            assert mount.startswith("secret:"), f"{container.where}: {flag} {path} on {mount}"
    (healthcheck,) = _instruction(DOCKERFILES["linewatch-edge"], "HEALTHCHECK")
    assert "secure_channel" in healthcheck and "insecure_channel" not in healthcheck
    tls_dir = str(_flag(edge_default, "--tls-ca")).rpartition("/")[0]
    assert f"'{tls_dir}/'" in healthcheck, "the health check reads the node's own certificate"


def test_no_deploy_file_runs_anything_insecure() -> None:
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        assert "--insecure" not in text, f"{path.relative_to(ROOT)} turns mutual TLS off"
        assert "insecure_channel" not in text, f"{path.relative_to(ROOT)} dials plaintext"


def test_every_node_with_a_model_store_trusts_only_the_cloud_key() -> None:
    """A node that takes pushes runs only released bundles: a trusted key, never unsigned."""
    edge_default = _exec_form(DOCKERFILES["linewatch-edge"], "ENTRYPOINT") + _exec_form(
        DOCKERFILES["linewatch-edge"], "CMD"
    )
    nodes = [c.argv for c in _linewatch_containers() if c.argv[1:2] == ["serve"]]
    for argv in [edge_default, *nodes]:
        if "--model-dir" in argv:
            assert _flag(argv, "--trusted-key"), f"{argv}: a model store without --trusted-key"
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        assert "--allow-unsigned" not in text, f"{path.relative_to(ROOT)} runs unsigned bundles"
