"""The one door to moto's in-memory backends. Nothing outside gameday/localcloud imports moto."""

from __future__ import annotations

from typing import Any

from moto.backends import get_backend

from gameday.localcloud.process.context import ACCOUNT_ID


def dynamodb(region: str) -> Any:
    return get_backend("dynamodb")[ACCOUNT_ID][region]


def awslambda(region: str) -> Any:
    return get_backend("lambda")[ACCOUNT_ID][region]


def apigateway(region: str) -> Any:
    return get_backend("apigateway")[ACCOUNT_ID][region]


def route53() -> Any:
    return get_backend("route53")[ACCOUNT_ID]["global"]


def cloudformation(region: str) -> Any:
    return get_backend("cloudformation")[ACCOUNT_ID][region]
