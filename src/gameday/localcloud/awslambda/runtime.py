"""The Lambda runtime of the local cloud: runs a function's Python handler in-process.

moto stores functions but cannot run them without Docker. Here a function's zip (as
moto holds it) is extracted once per code hash and its handler module imported under a
unique name per function and configuration, so module-level state (boto3 clients) is
per function, per region, as separate Lambda execution environments are.

Every invocation reads the function's CURRENT configuration from moto, so
`update_function_configuration` takes effect on the next request; a changed environment,
handler or code gives a fresh module instance (a cold start), as Lambda starts new
execution environments. Reserved concurrency is honoured: 0 throttles every invocation,
N caps concurrent executions (over the cap: throttled, as Lambda answers a synchronous
invoke with 429 rather than queueing it).

Environment isolation inside one process: os.environ is given a thread-local overlay
(its class is swapped once for a subclass, so every holder of the os.environ object,
botocore included, sees it). In a thread that runs a handler, os.environ / os.getenv show
exactly that function's environment (its Variables plus what Lambda sets: AWS_REGION,
AWS_LAMBDA_FUNCTION_NAME, the keys of a session of its execution role, AWS_ENDPOINT_URL of the local cloud, and no
config/credential files of the host). Other threads see the real environment.

Time scale: a caller's deadline (API Gateway's scaled 29 s) counts once the execution
environment is warm. A cold start and its first call (imports, boto3 model loading) cost
the same few hundred ms locally as on AWS, where that is small beside 29 s; scaled, it
would not be, and every configuration flip would risk a spurious 504.

Two ways to call: invoke() hands the call to a pool thread and waits up to the caller's
deadline (InvocationTimeout); invoke_here() runs it in the caller's thread and calls back at the
deadline from a watchdog thread (the data plane: no hand-off per request).

Optional (LambdaRuntime(ctx, in_process_aws=True)): handlers' boto3 calls to the local AWS
endpoint are served without a socket: DynamoDB by moto's DynamoDB handler (left unsigned: moto
checks no signature; IAM authorises it as the function's role, from its key), anything else by the
endpoint's WSGI app (IAM included); see _send_in_process.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import functools
import hashlib
import importlib.util
import io
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore
import botocore.handlers
from botocore.awsrequest import AWSResponse
from moto.awslambda.exceptions import LambdaClientError
from werkzeug.exceptions import HTTPException
from werkzeug.test import EnvironBuilder, run_wsgi_app

from gameday.localcloud.awslambda import update_status
from gameday.localcloud.awslambda.watchdog import Watchdog
from gameday.localcloud.iam import enforcement
from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue import patches
from gameday.localcloud.motoglue.server import aws_app
from gameday.localcloud.process.context import CloudContext

DUMMY_CREDENTIAL = "gameday-local"
INIT_LIMIT_S = 10.0  # Lambda's limit for a cold start's init (not scaled: it is local compute time)
# Lambda's own variables; a function's Variables cannot override them (AWS refuses them).
RESERVED_KEYS = frozenset({
    "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})

UPDATE_CONFIGURATION = patches.declare(
    "moto.awslambda.models:LambdaFunction.update_configuration",
    why="record a lambda_config ground-truth event (changed key names only) at the moment "
        "a function's environment changes (UpdateFunctionConfiguration, CloudFormation update)",
    kind="wrap",
    signature="(self, config_updates: 'dict[str, Any]') -> 'dict[str, Any]'",
)

USER_AGENT_SANITIZER = patches.declare(
    "botocore.useragent:sanitize_user_agent_string_component",
    why="handlers' boto3 calls run in the cloud process; botocore rebuilds its User-Agent twice per call, "
        "sanitising every component character by character (~10% of a PutItem's client CPU). The function "
        "is pure, so it is memoised (same output, cached)",
    kind="wrap",
    signature="(raw_str, allow_hash)",
)


MOTO_DYNAMODB_DISPATCH = patches.declare(
    "moto.dynamodb.responses:DynamoHandler.dispatch",
    why="handlers' in-process DynamoDB calls go straight to moto's DynamoDB response handler, as "
        "moto's own mock does (skipping the server's Flask routing: ~10% of a PutItem's CPU)",
    kind="call",
    signature="(*args: 'Any', **kwargs: 'Any') -> 'Any'",
)

MOTO_NORMALIZE_REQUEST = patches.declare(
    "moto.core.request:normalize_request",
    why="turns botocore's prepared request into the request type moto's handlers take",
    kind="call",
    signature="(request: 'AWSPreparedRequest | LocalProxy[Request] | Request') -> 'Request'",
)

BOTOCORE_BUILTIN_HANDLERS = patches.declare(
    "botocore.handlers:BUILTIN_HANDLERS",
    why="with in_process_aws, a 'before-send' handler is appended (as moto's own mock does) so that "
        "handlers' calls to the local endpoint are served without a socket, and a 'choose-signer.dynamodb' "
        "handler that leaves those DynamoDB calls unsigned",
    kind="wrap",
)


# --- errors an invocation can end in (the data plane maps them to API Gateway's answers) ---

class LambdaError(Exception):
    """An invocation that did not produce a handler result."""


class FunctionNotFound(LambdaError):
    """The function (or qualifier) does not exist, or the runtime is stopped."""


class Throttled(LambdaError):
    """429 TooManyRequestsException: reserved concurrency 0, or the cap is reached."""


class InvocationTimeout(LambdaError):
    """The caller's deadline passed; the handler keeps running (and holds its slot) until done."""


class InvocationError(LambdaError):
    """The handler raised, could not be loaded, or returned something not JSON-serialisable."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


# --- the thread-local environment overlay ---

_TLS = threading.local()
_OVERLAY_LOCK = threading.Lock()


class _OverlayEnviron(os._Environ):
    """os.environ whose contents, in a thread running a handler, are that function's environment."""

    def __getitem__(self, key: str) -> str:
        env = getattr(_TLS, "env", None)
        if env is None:
            return super().__getitem__(key)
        try:
            return env[key]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: str) -> None:
        env = getattr(_TLS, "env", None)
        if env is None:
            super().__setitem__(key, value)
            return
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"str expected, not {type(value).__name__}")
        env[key] = value  # a handler changes its own environment, never the process's

    def __delitem__(self, key: str) -> None:
        env = getattr(_TLS, "env", None)
        if env is None:
            super().__delitem__(key)
            return
        try:
            del env[key]
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        env = getattr(_TLS, "env", None)
        if env is None:
            return super().__iter__()
        return iter(list(env))

    def __len__(self) -> int:
        env = getattr(_TLS, "env", None)
        return super().__len__() if env is None else len(env)

    def __repr__(self) -> str:
        if getattr(_TLS, "env", None) is None:
            return super().__repr__()
        return "environ({...function environment...})"  # never print a function's values

    def copy(self) -> dict[str, str]:
        env = getattr(_TLS, "env", None)
        return super().copy() if env is None else dict(env)


def install_environ_overlay() -> None:
    """Idempotent, process-wide; harmless to other threads (they see the real environment)."""
    with _OVERLAY_LOCK:
        if not isinstance(os.environ, _OverlayEnviron):
            os.environ.__class__ = _OverlayEnviron


# --- optional: handlers' AWS calls to the local endpoint without a socket ---

class _Body:
    """What botocore's AWSResponse reads a body from (`raw.stream()`)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._data


DYNAMODB_TARGET_PREFIX = "DynamoDB_20120810."


def _send_in_process(request: Any, **_kwargs: Any) -> Any:
    """botocore 'before-send' hook: in a handler thread with in-process AWS calls enabled, a
    request to the local AWS endpoint is served without TCP by the same moto backends: DynamoDB
    calls by moto's DynamoDB handler directly, anything else by the endpoint's WSGI app.
    Requests elsewhere (None) go over HTTP."""
    target = getattr(_TLS, "aws_app", None)
    if target is None or getattr(request, "stream_output", False):
        return None
    prefix, app = target
    if not _is_local(request.url, prefix):
        return None
    operation = request.headers.get("X-Amz-Target")
    if isinstance(operation, bytes):
        operation = operation.decode("latin-1")
    if operation and operation.startswith(DYNAMODB_TARGET_PREFIX):
        return _dispatch_dynamodb(request)
    return _send_to_app(app, request)


def _is_local(url: str, prefix: str) -> bool:
    return url == prefix or url.startswith(prefix + "/") or url.startswith(prefix + "?")


def _note_destination(params: Any = None, **_kwargs: Any) -> None:
    """botocore 'before-call.dynamodb' hook: whether this call goes to the local endpoint (only
    those are served in process, so only those may be left unsigned)."""
    target = getattr(_TLS, "aws_app", None)
    url = params.get("url", "") if isinstance(params, dict) else ""
    _TLS.local_call = target is not None and _is_local(url, target[0])


def _unsigned_in_process(region_name: str | None = None, **_kwargs: Any) -> Any:
    """botocore 'choose-signer.dynamodb' hook: a handler's DynamoDB call that will be served in
    process is not signed (SigV4 is ~15% of its CPU and moto checks no signature); the region the
    signature would have named is kept for _dispatch_dynamodb, which states it to moto."""
    if getattr(_TLS, "aws_app", None) is None or not getattr(_TLS, "local_call", False):
        return None
    _TLS.local_call = False
    _TLS.signing_region = region_name
    return botocore.UNSIGNED


def _credential_scope(request: Any) -> None:
    """The Authorization header moto reads the region (and account) from, for an unsigned call,
    naming the handler's own access key (its execution role's session) so that IAM authorises
    the call as that role, as Lambda's signed calls are."""
    region = getattr(_TLS, "signing_region", None)
    if region and "Authorization" not in request.headers:
        _TLS.signing_region = None
        env = getattr(_TLS, "env", None) or {}
        key = env.get("AWS_ACCESS_KEY_ID") or DUMMY_CREDENTIAL
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={key}/20120810/{region}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=not-signed-served-in-process")
        token = env.get("AWS_SESSION_TOKEN")
        if token and "X-Amz-Security-Token" not in request.headers:
            request.headers["X-Amz-Security-Token"] = token


def _dispatch_dynamodb(request: Any) -> AWSResponse:
    """What moto's botocore stubber does for a matched URL, for DynamoDB (after IAM's decision)."""
    _credential_scope(request)
    refusal = enforcement.authorise_prepared(request)
    if refusal is not None:
        return AWSResponse(request.url, refusal[0], dict(refusal[1]), _Body(refusal[2]))
    normalized = MOTO_NORMALIZE_REQUEST.original()(request)
    try:
        status, headers, body = MOTO_DYNAMODB_DISPATCH.original()(normalized, normalized.raw_url, normalized.headers)
    except HTTPException as exc:  # how moto's handlers signal some AWS errors
        status, headers, body = exc.code, exc.get_headers(), exc.get_body()
    if isinstance(body, str):
        body = body.encode("utf-8")
    return AWSResponse(request.url, int(status), dict(headers), _Body(body or b""))


def _send_to_app(app: Any, request: Any) -> AWSResponse:
    """The request through the endpoint's WSGI app (every service moto serves)."""
    url = request.url
    parts = urlsplit(url)
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in request.headers.items()}
    environ = EnvironBuilder(method=request.method, path=parts.path or "/", query_string=parts.query,
                             headers=headers, data=body or b"",
                             base_url=f"{parts.scheme}://{parts.netloc}").get_environ()
    app_iter, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    try:
        data = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return AWSResponse(url, int(status.split(" ", 1)[0]), dict(response_headers), _Body(data))


_HOOK_LOCK = threading.Lock()


def _install_in_process_hook() -> None:
    """Every botocore session created from now on registers the hook (as moto's own mock does).
    boto3's default session (handlers' boto3.client() uses it) is dropped if it predates the hook,
    so the next use makes a new one with it; holders of the old one are unaffected."""
    with _HOOK_LOCK:
        if ("before-send", _send_in_process) not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append(("before-call.dynamodb", _note_destination))
            botocore.handlers.BUILTIN_HANDLERS.append(("choose-signer.dynamodb", _unsigned_in_process))
            botocore.handlers.BUILTIN_HANDLERS.append(("before-send", _send_in_process))
            boto3.DEFAULT_SESSION = None


# --- one function configuration loaded in-process ---

@dataclass
class _Instance:
    """A loaded handler: what Lambda calls an execution environment."""

    code_sha: str
    handler_name: str
    runtime_name: str
    role: str
    variables: dict[str, str]
    environ: dict[str, str]
    module_name: str
    handler: Callable[[Any, Any], Any]
    invocations: int = 0
    warm: bool = False  # its first invocation has returned (that one counts as part of the cold start)

    def matches(self, fn: Any) -> bool:
        return (fn.code_sha_256 == self.code_sha and fn.handler == self.handler_name
                and fn.run_time == self.runtime_name and fn.role == self.role
                and update_status.effective_variables(fn) == self.variables)


@dataclass
class LambdaContext:
    """The `context` argument of a Python handler (the attributes handlers use)."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float = field(repr=False)
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class _Concurrency:
    """Running executions per function; reserved concurrency caps them without queueing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], int] = {}

    def try_acquire(self, key: tuple[str, str], limit: int | None) -> bool:
        with self._lock:
            running = self._running.get(key, 0)
            if limit is not None and running >= limit:
                return False
            self._running[key] = running + 1
            return True

    def release(self, key: tuple[str, str]) -> None:
        with self._lock:
            running = self._running.get(key, 1) - 1
            if running > 0:
                self._running[key] = running
            else:
                self._running.pop(key, None)

    def running(self, key: tuple[str, str]) -> int:
        with self._lock:
            return self._running.get(key, 0)


def _reserved_limit(fn: Any) -> int | None:
    value = fn.reserved_concurrency
    if value is None or value == "":
        return None
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return None


def _qualifier(fn: Any) -> str:
    """$LATEST, or the published version number (moto's $LATEST object also says version 1)."""
    return "$LATEST" if fn.function_arn.endswith(f":function:{fn.function_name}") else str(fn.version)


CODE_DIR_PREFIX = "gameday-lambda-"  # + the cloud process's pid + "-": extracted function code


def sweep_stale_code_dirs(tmp: Path | None = None) -> list[Path]:
    """Removes the code directories of cloud processes that no longer exist: a SIGKILLed cloud
    runs no exit handler, so its directory would stay behind forever."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(f"{CODE_DIR_PREFIX}*-*"):
        pid = path.name[len(CODE_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _process_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


_ACTIVE: list[LambdaRuntime] = []  # runtimes told about configuration changes
_ACTIVE_LOCK = threading.Lock()
_MISSING = object()


def _changed_keys(before: dict[str, str], after: dict[str, str]) -> list[str]:
    keys = set(before) | set(after)
    return sorted(k for k in keys if before.get(k, _MISSING) != after.get(k, _MISSING))


def _update_configuration_recording(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
    update_status.refuse_if_in_progress(self)
    before = dict(self.environment_vars or {})
    result = UPDATE_CONFIGURATION.original()(self, config_updates)
    changed = _changed_keys(before, dict(self.environment_vars or {}))
    if changed:
        with _ACTIVE_LOCK:
            runtimes = list(_ACTIVE)
        if runtimes:
            ctx = runtimes[0]._ctx
            update_status.begin(self, before, ctx.scale.seconds(ctx.settings.lambda_update_s))
            result = update_status.report(self, result)
        for runtime in runtimes:
            runtime._environment_changed(self, changed)
    return result


class LambdaRuntime:
    """Runs functions stored in moto: `invoke(region, function, event, timeout)`.

    install() before the first request (patches moto, installs the environ overlay);
    stop() removes extracted code and loaded modules.
    """

    MAX_WORKERS = 256  # handler threads; an invocation past its deadline keeps its thread until it returns

    def __init__(self, ctx: CloudContext, in_process_aws: bool = False) -> None:
        """in_process_aws: handlers' boto3 calls to ctx.aws_endpoint_url are served by the same
        WSGI app the endpoint serves, called directly instead of over loopback TCP (about a
        third of a PutItem's CPU in this process, measured). Off: every call goes over real HTTP."""
        self._ctx = ctx
        self._aws_app: Any = None
        if in_process_aws:
            self._aws_app = aws_app(ctx.control)
        self._regions = {spec.name for spec in ctx.regions}
        self._instances: dict[tuple[str, str, str], _Instance] = {}
        self._code_dirs: dict[str, Path] = {}
        self._cold_lock = threading.Lock()
        self._concurrency = _Concurrency()
        self._counter = itertools.count(1)
        self._root: Path | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._watchdog: Watchdog | None = None
        self._stopped = False

    # --- lifecycle ---

    def install(self) -> None:
        install_environ_overlay()
        UPDATE_CONFIGURATION.apply(_update_configuration_recording)
        USER_AGENT_SANITIZER.apply(functools.lru_cache(maxsize=4096)(USER_AGENT_SANITIZER.original()))
        if self._aws_app is not None:
            _install_in_process_hook()
        sweep_stale_code_dirs()
        self._root = Path(tempfile.mkdtemp(prefix=f"{CODE_DIR_PREFIX}{os.getpid()}-"))
        atexit.register(shutil.rmtree, self._root, True)  # also when the process exits without stop()
        self._pool = concurrent.futures.ThreadPoolExecutor(self.MAX_WORKERS, thread_name_prefix="lambda")
        if self._watchdog is None:
            self._watchdog = Watchdog("lambda-deadlines")
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)

    def start(self) -> None:
        """Nothing to start: handlers load on first invocation (install() does the setup)."""

    def stop(self) -> None:
        self._stopped = True
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        update_status.forget_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._watchdog is not None:
            self._watchdog.stop()
        with self._cold_lock:
            for instance in self._instances.values():
                sys.modules.pop(instance.module_name, None)
            self._instances.clear()
            self._code_dirs.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    # --- invocation ---

    def invoke(self, region: str, function: str, event: Any, timeout: float | None = None) -> Any:
        """The handler's result after a JSON round trip (as Lambda returns it).

        `function` is a name or ARN, optionally qualified (version or alias).
        Raises FunctionNotFound, Throttled, InvocationTimeout or InvocationError.
        """
        pool = self._pool
        fn, slot = self._admit(region, function, pool)
        assert pool is not None
        initialised = threading.Event()
        try:
            future = pool.submit(self._execute, fn, event, slot,
                                 lambda warm: initialised.set() if warm else None, initialised.set)
        except RuntimeError:  # pool shut down between the check and the submit
            self._concurrency.release(slot)
            raise FunctionNotFound("the Lambda runtime is not running") from None
        try:
            # The deadline counts once the execution environment is warm (module docstring).
            if timeout is not None:
                initialised.wait(INIT_LIMIT_S)
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise InvocationTimeout(f"{fn.function_name} did not answer within {timeout:.3f} s") from None

    def invoke_here(self, region: str, function: str, event: Any, timeout: float,
                    on_timeout: Callable[[], object]) -> Any:
        """invoke() in the calling thread: no hand-off to a pool thread and back (~15% of a
        PutItem's CPU in the data plane). At the deadline (counted as invoke() counts it),
        on_timeout() runs in the watchdog's thread, so the caller can answer then; the handler
        runs on, and its result, returned later, is the caller's to drop.
        Raises FunctionNotFound, Throttled or InvocationError."""
        watchdog = self._watchdog
        fn, slot = self._admit(region, function, watchdog)
        assert watchdog is not None
        # Until the execution environment is known to be warm, a cold start's allowance applies
        # (its init included, as invoke() counts it); once warm, the caller's timeout from now.
        timers = [watchdog.call_at(time.monotonic() + INIT_LIMIT_S + timeout, on_timeout)]

        def started(warm: bool) -> None:
            if warm:
                timers[0].cancel()
                timers.append(watchdog.call_at(time.monotonic() + timeout, on_timeout))

        try:
            return self._execute(fn, event, slot, started)
        finally:
            for timer in timers:
                timer.cancel()

    def _admit(self, region: str, function: str, machinery: Any) -> tuple[Any, tuple[str, str]]:
        """The function and its concurrency slot, taken (the caller's _execute releases it)."""
        if self._stopped or machinery is None:
            raise FunctionNotFound("the Lambda runtime is not running")
        fn = self._lookup(region, function)
        slot = (fn.region, fn.function_name)
        if not self._concurrency.try_acquire(slot, _reserved_limit(fn)):
            raise Throttled(f"Rate Exceeded: {fn.function_name} (reserved concurrency {fn.reserved_concurrency})")
        return fn, slot

    def running(self, region: str, function_name: str) -> int:
        """Executions of the function in progress (for tests and figures)."""
        return self._concurrency.running((region, function_name))

    def _lookup(self, region: str, function: str) -> Any:
        try:
            return moto_access.awslambda(region).get_function(function)
        except (LambdaClientError, KeyError, ValueError) as exc:
            raise FunctionNotFound(f"{function} in {region}: {exc}") from None

    def _execute(self, fn: Any, event: Any, slot: tuple[str, str], started: Callable[[bool], object],
                 finished: Callable[[], object] | None = None) -> Any:
        """Runs the handler; started(warm) once its execution environment is known, finished()
        at the end (pass or fail); the concurrency slot is released here."""
        instance: _Instance | None = None
        try:
            instance = self._instance_for(fn)
            started(instance.warm)
            context = LambdaContext(
                function_name=fn.function_name,
                function_version=instance.environ["AWS_LAMBDA_FUNCTION_VERSION"],
                invoked_function_arn=fn.function_arn,
                memory_limit_in_mb=int(fn.memory_size or 128),
                aws_request_id=str(uuid.uuid4()),
                log_group_name=instance.environ["AWS_LAMBDA_LOG_GROUP_NAME"],
                log_stream_name=instance.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
                deadline=time.monotonic() + self._ctx.scale.timeout(float(fn.timeout or 3)),
            )
            _TLS.env = dict(instance.environ)  # the handler may change its copy
            _TLS.aws_app = self._in_process_target()
            try:
                result = instance.handler(event, context)
            except (Exception, SystemExit) as exc:
                raise InvocationError(type(exc).__name__, str(exc)) from exc
            finally:
                _TLS.env = _TLS.aws_app = None
            instance.invocations += 1
            try:
                return json.loads(json.dumps(result))
            except (TypeError, ValueError) as exc:
                raise InvocationError("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None
        finally:
            if instance is not None:
                instance.warm = True
            if finished is not None:
                finished()
            self._concurrency.release(slot)

    def _in_process_target(self) -> tuple[str, Any] | None:
        if self._aws_app is None or not self._ctx.aws_endpoint_url:
            return None
        return self._ctx.aws_endpoint_url.rstrip("/"), self._aws_app

    # --- execution environments ---

    def _instance_for(self, fn: Any) -> _Instance:
        key = (fn.region, fn.function_name, _qualifier(fn))
        instance = self._instances.get(key)
        if instance is not None and instance.matches(fn):
            return instance
        with self._cold_lock:
            instance = self._instances.get(key)
            if instance is not None and instance.matches(fn):
                return instance
            fresh = self._load(fn)
            if instance is not None:
                sys.modules.pop(instance.module_name, None)
            self._instances[key] = fresh
            return fresh

    def _load(self, fn: Any) -> _Instance:
        """A cold start: the function's code, environment and a fresh module instance."""
        if self._stopped:
            raise FunctionNotFound("the Lambda runtime is not running")
        runtime_name = fn.run_time or ""
        if not runtime_name.startswith("python") or getattr(fn, "package_type", "Zip") != "Zip":
            raise InvocationError("Runtime.InvalidRuntime",
                                  f"the local cloud runs python zip functions only, not {runtime_name or fn.package_type}")
        handler_name = fn.handler or ""
        module_path, _, function_name = handler_name.rpartition(".")
        if not module_path or not function_name:
            raise InvocationError("Runtime.MalformedHandlerName", f"Bad handler '{handler_name}': expected module.function")
        code_dir = self._code_dir(fn)
        source = self._module_file(code_dir, module_path)
        if source is None:
            raise InvocationError("Runtime.ImportModuleError",
                                  f"Unable to import module '{module_path}': No module named '{module_path}'")
        variables = update_status.effective_variables(fn)
        version = _qualifier(fn)
        environ = self._environment(fn, variables, code_dir, version)
        safe = re.sub(r"\W", "_", f"{fn.region}_{fn.function_name}_{module_path}")
        module_name = f"gameday_lambda_{next(self._counter)}_{safe}"
        previous_env = getattr(_TLS, "env", None)
        _TLS.env = dict(environ)  # module-level code (boto3 clients) sees the function's environment
        _TLS.aws_app = self._in_process_target()
        try:
            module = self._import(module_name, source, code_dir)
            handler = getattr(module, function_name, None)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(module_name, None)
            raise InvocationError("Runtime.ImportModuleError",
                                  f"Unable to import module '{module_path}': {type(exc).__name__}: {exc}") from exc
        finally:
            _TLS.env, _TLS.aws_app = previous_env, None
        if not callable(handler):
            sys.modules.pop(module_name, None)
            raise InvocationError("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_path}'")
        return _Instance(code_sha=fn.code_sha_256, handler_name=handler_name, runtime_name=runtime_name,
                         role=fn.role, variables=variables, environ=environ, module_name=module_name, handler=handler)

    def _environment(self, fn: Any, variables: dict[str, str], code_dir: Path, version: str) -> dict[str, str]:
        assert self._root is not None
        nowhere = str(self._root / "no-aws-config")  # never read the host's ~/.aws
        # The execution role's session, as Lambda gives a function: its calls are authorised as the role.
        access_key, secret_key, session_token = enforcement.execution_credentials(fn.role, fn.function_name, fn.region)
        environ = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_ENDPOINT_URL": self._ctx.aws_endpoint_url,
            "AWS_CONFIG_FILE": nowhere,
            "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        }
        environ.update({str(k): str(v) for k, v in variables.items() if k not in RESERVED_KEYS})
        environ.update({
            "_HANDLER": fn.handler,
            "AWS_REGION": fn.region,
            "AWS_DEFAULT_REGION": fn.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size or 128),
            "AWS_LAMBDA_FUNCTION_VERSION": version,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[{version}]{uuid.uuid4().hex}",
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_SESSION_TOKEN": session_token,
            "LAMBDA_TASK_ROOT": str(code_dir),
            "LAMBDA_RUNTIME_DIR": str(code_dir),
        })
        return environ

    def _code_dir(self, fn: Any) -> Path:
        """The function's zip extracted once per code hash (called under the cold-start lock)."""
        assert self._root is not None
        code: bytes = getattr(fn, "code_bytes", b"") or b""
        if not code:
            raise InvocationError("Runtime.InvalidEntrypoint", "the function has no code package")
        digest = getattr(fn, "code_digest", None) or hashlib.sha256(code).hexdigest()
        found = self._code_dirs.get(digest)
        if found is not None:
            return found
        target = self._root / digest
        try:
            with zipfile.ZipFile(io.BytesIO(code)) as archive:
                archive.extractall(target)
        except zipfile.BadZipFile as exc:
            raise InvocationError("Runtime.InvalidEntrypoint", f"the code package is not a zip file: {exc}") from None
        self._code_dirs[digest] = target
        return target

    @staticmethod
    def _module_file(code_dir: Path, module_path: str) -> Path | None:
        relative = Path(*re.split(r"[./]", module_path))
        for candidate in (code_dir / relative.with_suffix(".py"), code_dir / relative / "__init__.py"):
            if candidate.is_file():
                return candidate
        return None

    @staticmethod
    def _import(module_name: str, source: Path, code_dir: Path) -> ModuleType:
        """Import `source` as a new module; the code directory is on sys.path while it loads
        (so the handler's sibling modules import, as from LAMBDA_TASK_ROOT)."""
        spec = importlib.util.spec_from_file_location(module_name, source)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {source.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickle look modules up by name
        sys.path.insert(0, str(code_dir))
        try:
            spec.loader.exec_module(module)
        finally:
            try:
                sys.path.remove(str(code_dir))
            except ValueError:
                pass
        return module

    # --- ground truth ---

    def _environment_changed(self, fn: Any, keys: list[str]) -> None:
        if fn.region in self._regions and not self._stopped:
            self._ctx.truth.record("lambda_config", region=fn.region, function=fn.function_name, keys_changed=keys)

