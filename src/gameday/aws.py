"""boto3 clients for one deployment: ONE Session serving every region, one place for endpoint,
timeout and retry settings.

Why one Session: a session resolves credentials once; a session per region assumes the role once
per region (an MFA prompt each). Clients are `session.client(service, region_name=r)`.
Why no process-wide default session: two deployments (e.g. two local clouds under
pytest-xdist, or a local cloud beside AWS) must never share credentials or endpoints.
The same code serves AWS and the local cloud; only `aws_endpoint_url` differs. With
`target: aws`, an `AWS_ENDPOINT_URL*` variable in the environment (which boto3 applies silently)
is refused before any call: it would send the "AWS" game day to a leftover emulator.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from gameday.deployment import Deployment
from gameday.errors import UsageError
from gameday.lazy import lazy_module

if TYPE_CHECKING:
    import boto3
    import botocore.session as botocore_session
else:
    boto3 = lazy_module("boto3")
    botocore_session = lazy_module("botocore.session")


ROUTE53_REGION = "us-east-1"  # Route 53 is global; its API lives in us-east-1
DUMMY_CREDENTIALS = {"aws_access_key_id": "gameday-local", "aws_secret_access_key": "gameday-local"}


def _configured_credentials_exist() -> bool:
    """Whether the usual chain (env, profile, config files) yields credentials.

    Instance/container metadata providers are skipped: against a local endpoint they
    only add seconds of timeouts and never matter.
    """
    session = botocore_session.Session()
    resolver = session.get_component("credential_provider")
    for name in ("iam-role", "container-role"):
        try:
            resolver.remove(name)
        except (KeyError, ValueError):
            pass
    try:
        return session.get_credentials() is not None
    except Exception:  # a broken profile: let boto3 report it on the first call instead
        return True


def endpoint_variables(environ: dict[str, str] | None = None) -> list[str]:
    """The AWS_ENDPOINT_URL* variables set in `environ` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    return sorted(name for name, value in env.items() if name.startswith("AWS_ENDPOINT_URL") and value)


def refuse_endpoint_overrides(deployment: Deployment, environ: dict[str, str] | None = None) -> None:
    """UsageError (one line) when a `target: aws` deployment would be redirected by the environment."""
    if deployment.target != "aws":
        return
    found = endpoint_variables(environ)
    if found:
        raise UsageError(f"{deployment.source}: target aws, but {', '.join(found)} is set in the environment "
                         f"(boto3 would send AWS calls to that endpoint); unset it")


class AwsClients:
    """Client factory for one deployment. Clients are cached per (service, region) and are
    thread-safe once created (boto3 clients are; sessions are not, hence the lock)."""

    def __init__(self, deployment: Deployment, *, connect_timeout_s: float = 5.0,
                 read_timeout_s: float = 30.0, max_attempts: int = 5) -> None:
        refuse_endpoint_overrides(deployment)
        self.deployment = deployment
        self.endpoint_url = deployment.aws_endpoint_url
        from botocore.config import Config

        self.config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"mode": "standard", "max_attempts": max_attempts},
        )
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._credentials: dict[str, str] = {}
        self._account: str | None = None
        if self.endpoint_url and not _configured_credentials_exist():
            self._credentials = dict(DUMMY_CREDENTIALS)

    def session(self, region: str | None = None) -> boto3.Session:
        """The one Session of this deployment (`region` is accepted for old callers and ignored)."""
        with self._lock:
            return self._session_locked()

    def _session_locked(self) -> boto3.Session:
        if self._session is None:
            self._session = boto3.Session(**self._credentials)
        return self._session

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                session = self._session_locked()
                self._clients[key] = session.client(service, region_name=region, endpoint_url=self.endpoint_url,
                                                    config=self.config)
            return self._clients[key]

    def account_id(self) -> str:
        """The caller's account (STS GetCallerIdentity, asked once)."""
        if self._account is None:
            region = self.deployment.regions[0].name if self.deployment.regions else ROUTE53_REGION
            self._account = str(self.client("sts", region).get_caller_identity()["Account"])
        return self._account

    def lambda_(self, region: str) -> Any:
        return self.client("lambda", region)

    def dynamodb(self, region: str) -> Any:
        return self.client("dynamodb", region)

    def route53(self) -> Any:
        return self.client("route53", ROUTE53_REGION)


def clients_for(deployment: Deployment, **kwargs: Any) -> AwsClients:
    """The clients for `deployment` (a new factory each call; hold on to it)."""
    return AwsClients(deployment, **kwargs)
