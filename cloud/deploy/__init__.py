"""The deployer: from a registry version to every chosen node, with a record of each."""

from cloud.deploy.pusher import (
    ClientOptions,
    NodeClient,
    NodeRefused,
    NodeUnreachable,
    PackedBundle,
    pack_bundle,
)
from cloud.deploy.record import DeploymentRecorder, DeploymentView, deployment_status
from cloud.deploy.rollout import (
    OutcomeCallback,
    RolloutReport,
    RolloutState,
    TargetOutcome,
    TargetState,
    roll_out,
)
from cloud.deploy.targets import Target, resolve_targets

__all__ = [
    "ClientOptions",
    "DeploymentRecorder",
    "DeploymentView",
    "NodeClient",
    "NodeRefused",
    "NodeUnreachable",
    "OutcomeCallback",
    "PackedBundle",
    "RolloutReport",
    "RolloutState",
    "Target",
    "TargetOutcome",
    "TargetState",
    "deployment_status",
    "pack_bundle",
    "resolve_targets",
    "roll_out",
]
