"""Who made a request, from the access key it was signed with, and the policies that apply to them.

Three kinds of caller, as on AWS:
- the account root: the dummy keys the local cloud, its provisioning and the harness have always
  used, and unsigned requests. Unrestricted, as the root user is (no identity policy applies to it).
- an IAM user: an access key made with CreateAccessKey. Its inline and attached policies and those
  of its groups apply, and its permissions boundary.
- an assumed-role session: keys from sts:AssumeRole, including the sessions the Lambda runtime
  gives each function's execution role. The role's inline and attached policies apply, its
  permissions boundary, and the session policy passed to AssumeRole.

A key that this cloud's IAM issued (moto encodes the account in the key id, as AWS does) but no
longer knows (deleted, or its user deleted), an inactive key, or a session key presented with the
wrong session token, is refused as AWS refuses it (InvalidClientTokenId), never taken for root.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches
from gameday.localcloud.process.context import ACCOUNT_ID

KEY_ID_FOR_ACCOUNT = patches.declare(
    "moto.iam.utils:generate_access_key_id_from_account_id", kind="call",
    signature="(account_id: str, prefix: str, total_length: int = 20) -> str",
    why="tells a key this cloud's IAM issued (the account is encoded in the key id) from a dummy key")
ROLE_BY_ARN = patches.declare(
    "moto.iam.models:IAMBackend.get_role_by_arn", kind="call", signature="(self, arn: 'str') -> 'Role'",
    why="the execution role of a function and the role behind a session")
ASSUME_ROLE = patches.declare(
    "moto.sts.models:STSBackend.assume_role", kind="call",
    signature="(self, region_name: str, role_session_name: str, role_arn: str, policy: str, duration: int, "
              "external_id: str) -> moto.sts.models.AssumedRole",
    why="the session of a function's execution role, whose keys its handler's calls are signed with")

ISSUED_PREFIXES = ("AKIA", "ASIA")
_ACCOUNT_PART: dict[str, tuple[str, str]] = {}


class InvalidClientToken(Exception):
    """The key names no valid credentials (AWS: InvalidClientTokenId / UnrecognizedClientException)."""


class NoSuchEntity(Exception):
    """No user, role or group has the ARN (AWS: NoSuchEntity)."""


@dataclass
class Principal:
    """A caller whose identity policies are enforced. `documents` are the identity-based
    policy documents (text or parsed); `boundary` and `session` are None when not set."""

    arn: str
    kind: str                       # "User" | "AssumedRole" ("Role" | "Group": a simulation's source)
    user_id: str
    documents: list[Any] = field(default_factory=list)
    boundary: list[Any] | None = None
    session: list[Any] | None = None
    username: str | None = None
    principal_arn: str | None = None   # aws:PrincipalArn: a session's role ARN (arn is the session's)
    account: str = ACCOUNT_ID


def _account_part() -> tuple[str, str]:
    """The characters after the prefix that encode ACCOUNT_ID, and the allowed 13th characters."""
    found = _ACCOUNT_PART.get(ACCOUNT_ID)
    if found is None:
        from moto.iam.utils import AWS_ROLE_ALPHABET

        sample = KEY_ID_FOR_ACCOUNT.original()(ACCOUNT_ID, "AKIA")
        half = AWS_ROLE_ALPHABET[16:] if int(ACCOUNT_ID) % 2 else AWS_ROLE_ALPHABET[:16]
        found = _ACCOUNT_PART[ACCOUNT_ID] = (sample[4:12], half)
    return found


def issued_here(access_key_id: str) -> bool:
    """Whether the key has the shape of a key this cloud's IAM or STS issued for its account."""
    if len(access_key_id) != 20 or not access_key_id.startswith(ISSUED_PREFIXES):
        return False
    part, middle = _account_part()
    return access_key_id[4:12] == part and access_key_id[12] in middle


class Principals:
    """Resolves access keys to principals, with an index of STS sessions (moto keeps them in a list)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}  # access key id -> moto AssumedRole
        self._execution: dict[tuple[str, str, str], Any] = {}  # (role arn, session name, region) -> AssumedRole

    def resolve(self, access_key_id: str | None, session_token: str | None) -> Principal | None:
        """None for the account root (unrestricted); raises InvalidClientToken for bad keys."""
        if not access_key_id or not issued_here(access_key_id):
            return None
        iam = moto_access.iam()
        key = iam.access_keys.get(access_key_id)
        if key is None or getattr(key, "status", "Active") != "Active":
            raise InvalidClientToken(access_key_id)
        if key.user_name is not None:
            if session_token:
                raise InvalidClientToken(access_key_id)  # a long-term key takes no session token
            return self._user(iam, key.user_name, access_key_id)
        session = self._session(access_key_id)
        if session is None or not session_token or session_token != session.session_token:
            raise InvalidClientToken(access_key_id)
        return self._assumed(iam, session)

    # --- users ---

    def _user(self, iam: Any, user_name: str, access_key_id: str) -> Principal:
        user = iam.users.get(user_name)
        if user is None or not any(k.access_key_id == access_key_id for k in user.access_keys):
            raise InvalidClientToken(access_key_id)
        return _user_principal(iam, user)

    # --- entities named by ARN (iam:SimulatePrincipalPolicy's PolicySourceArn) ---

    def entity(self, arn: str) -> Principal:
        """The user, role or group `arn` names, with the policies that apply to it (a user's include
        its groups'); NoSuchEntity when this cloud's IAM has none by that ARN (path included)."""
        iam = moto_access.iam()
        for user in list(iam.users.values()):
            if _arn_of(user, "user") == arn:
                return _user_principal(iam, user)
        for role in list(iam.roles.values()):
            if _arn_of(role, "role") == arn:
                return Principal(arn=arn, kind="Role", user_id=role.id, documents=_own_documents(role),
                                 boundary=_boundary(iam, getattr(role, "permissions_boundary_arn", None)),
                                 principal_arn=arn)
        for group in list(iam.groups.values()):
            if _arn_of(group, "group") == arn:
                return Principal(arn=arn, kind="Group", user_id=group.id, documents=_own_documents(group))
        raise NoSuchEntity(arn)

    # --- sessions ---

    def _session(self, access_key_id: str) -> Any:
        with self._lock:
            found = self._sessions.get(access_key_id)
        if found is not None:
            return found
        for session in list(moto_access.sts().assumed_roles):
            if session.access_key_id == access_key_id:
                with self._lock:
                    self._sessions[access_key_id] = session
                return session
        return None

    def _assumed(self, iam: Any, session: Any) -> Principal:
        try:
            role = _role_by_arn()(iam, session.role_arn)
        except Exception:  # the role was deleted: the session's permissions went with it
            role = None
        documents: list[Any] = []
        boundary = None
        role_id = "AROA-unknown"
        if role is not None:
            documents = _own_documents(role)
            boundary = _boundary(iam, getattr(role, "permissions_boundary_arn", None))
            role_id = role.id
        return Principal(arn=session.arn, kind="AssumedRole", user_id=f"{role_id}:{session.session_name}",
                         documents=documents, boundary=boundary,
                         session=[session.policy] if session.policy else None,
                         principal_arn=role.arn if role is not None else session.role_arn)

    def execution_session(self, role_arn: str, session_name: str, region: str) -> tuple[str, str, str]:
        """(access key id, secret, session token) of the session Lambda gives a function's
        execution role (session name = the function's name, as on AWS). One session per role,
        function and region, kept while this cloud's IAM still knows its key."""
        key = (role_arn, session_name, region)
        iam = moto_access.iam()
        with self._lock:
            session = self._execution.get(key)
        if session is None or session.access_key_id not in iam.access_keys:
            session = ASSUME_ROLE.original()(moto_access.sts(), region, session_name, role_arn, "", 43200, "")
            with self._lock:
                self._execution[key] = session
                self._sessions[session.access_key_id] = session
        return session.access_key_id, session.secret_access_key, session.session_token


def _user_principal(iam: Any, user: Any) -> Principal:
    """A user with its inline and attached policies, its groups' and its permissions boundary."""
    documents = _own_documents(user)
    for group in iam.groups.values():
        if any(member.name == user.name for member in group.users):
            documents += _own_documents(group)
    return Principal(arn=_arn_of(user, "user"), kind="User", user_id=user.id, documents=documents,
                     boundary=_boundary(iam, getattr(user, "permissions_boundary_arn", None)), username=user.name)


def _own_documents(entity: Any) -> list[Any]:
    """A user's, role's or group's inline policies and the default versions of its attached ones."""
    documents: list[Any] = list(entity.policies.values())
    return documents + [_default_document(p) for p in entity.managed_policies.values()]


def _arn_of(entity: Any, kind: str) -> str:
    return str(getattr(entity, "arn", None) or f"arn:aws:iam::{ACCOUNT_ID}:{kind}{entity.path}{entity.name}")


@functools.cache
def _role_by_arn() -> Any:
    return ROLE_BY_ARN.original()


def _default_document(policy: Any) -> Any:
    for version in getattr(policy, "versions", []):
        if getattr(version, "is_default", False):
            return version.document
    return "{}"  # no default version: a document with no statements


def _boundary(iam: Any, arn: str | None) -> list[Any] | None:
    """The permissions boundary's document; a boundary naming a policy that does not exist
    allows nothing (hardest reading)."""
    if not arn:
        return None
    policy = iam.managed_policies.get(arn)
    return [_default_document(policy)] if policy is not None else []
