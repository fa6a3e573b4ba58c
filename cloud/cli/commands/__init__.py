"""Importing this package registers every ``linewatch`` command on the app."""

from cloud.cli.commands import (  # noqa: F401
    broker,
    calibrate,
    certs,
    collect,
    demo,
    deploy,
    evaluate,
    registry,
    retrain,
    synth,
    train,
    users,
    web,
)
