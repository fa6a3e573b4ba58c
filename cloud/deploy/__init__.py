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
from cloud.deploy.service import (
    RollbackCallback,
    RollbackReport,
    RollbackResult,
    StartCallback,
    VersionDeployer,
    roll_back,
)
from cloud.deploy.targets import Target, resolve_targets
from cloud.deploy.watch import ErrorCallback, MoveCallback, ReportCallback, watch_alias

__all__ = [
    "ClientOptions",
    "DeploymentRecorder",
    "DeploymentView",
    "ErrorCallback",
    "MoveCallback",
    "NodeClient",
    "NodeRefused",
    "NodeUnreachable",
    "OutcomeCallback",
    "PackedBundle",
    "ReportCallback",
    "RollbackCallback",
    "RollbackReport",
    "RollbackResult",
    "RolloutReport",
    "RolloutState",
    "StartCallback",
    "Target",
    "TargetOutcome",
    "TargetState",
    "VersionDeployer",
    "deployment_status",
    "pack_bundle",
    "resolve_targets",
    "roll_back",
    "roll_out",
    "watch_alias",
]
