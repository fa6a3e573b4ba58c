"""The Linewatch database: models, sessions, migrations, writes and reads."""

from cloud.db.migrate import current_revision, head_revision, upgrade
from cloud.db.models import (
    Alert,
    Base,
    Deployment,
    DeploymentTarget,
    ModelVersion,
    Node,
    Review,
    ReviewState,
    Role,
    Sample,
    SampleEmbedding,
    User,
)
from cloud.db.session import DEFAULT_DB_URL, make_engine, make_session_factory

__all__ = [
    "DEFAULT_DB_URL",
    "Alert",
    "Base",
    "Deployment",
    "DeploymentTarget",
    "ModelVersion",
    "Node",
    "Review",
    "ReviewState",
    "Role",
    "Sample",
    "SampleEmbedding",
    "User",
    "current_revision",
    "head_revision",
    "make_engine",
    "make_session_factory",
    "upgrade",
]
