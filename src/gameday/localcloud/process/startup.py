"""What the cloud process pays once, at start-up, and how it is kept small (bench/local_cloud.py
prints the figures). Nothing here changes what the cloud does, only what it costs.

- What moto loads at import that the cloud never uses: loaded on first use (deferred.py).
- Garbage collection: start-up allocates ~340k objects that live as long as the process (modules,
  classes, botocore and moto models, moto's EC2 instance types); every full collection walks all
  of them again (~0.25 s of CPU to ready). The collector is paused until the cloud is ready,
  then one collection frees start-up's garbage and the survivors are frozen out of later
  collections (gc.freeze), which then only walk what the running cloud allocates.
- botocore data loaders: one per search path for the process (SHARED_LOADER), so each JSON model
  is parsed once, however many Sessions are built (moto builds three while importing moto.ec2).
- moto's model loader: moto builds a new botocore Loader for every service model it reads, and
  each new Loader lists every service directory again (~35 ms); one Loader serves them all.
- werkzeug URL builders: every URL rule (moto's Flask app per service, its REST routers) compiles
  two URL-building functions through `ast` + compile (~1 ms per rule, ~300 rules while
  provisioning); nothing in the cloud builds URLs, so a builder is compiled on first use.
- CloudFormation templates: they arrive as JSON (gameday/provision.py sends json.dumps) and moto
  parses each with PyYAML's pure-Python loader (~30 ms); JSON is YAML, so json.loads gives the
  same document; anything that is not JSON goes to moto's parser.
"""

from __future__ import annotations

import gc
import json
import threading
from collections.abc import Callable
from typing import Any

from gameday.localcloud.motoglue import patches
from gameday.localcloud.process import deferred

SHARED_LOADER = patches.declare(
    "botocore.session:create_loader", kind="wrap", signature="(search_path_string=None)",
    why="one botocore data loader per search path in the cloud process: each JSON model parsed once")
MOTO_LOADER = patches.declare(
    "moto.core.utils:create_loader", kind="wrap", signature="() -> 'Loader'",
    why="one moto model loader for the process instead of a new one (listing every service) per model")
URL_BUILDER = patches.declare(
    "werkzeug.routing.rules:Rule._compile_builder", kind="wrap",
    signature="(self, append_unknown: 'bool' = True) -> 't.Callable[..., tuple[str, str]]'",
    why="URL-building functions compiled on first use instead of for every rule moto's apps add")
PARSE_TEMPLATE = patches.declare(
    "moto.cloudformation.models:Stack.parse_template", kind="wrap",
    signature="(template: 'str') -> 'dict[str, Any]'",
    why="JSON template bodies parsed with json (same document) instead of PyYAML's pure-Python loader")


def pause_collector() -> None:
    """At the top of the cloud process's main, before the imports."""
    gc.disable()


def settle_collector() -> None:
    """Once the cloud is ready: collect start-up's garbage, then freeze the survivors out of
    later collections and turn the collector back on."""
    gc.collect()
    gc.freeze()
    gc.enable()


def install_shared_botocore_loader() -> None:
    """Before the first botocore Session of the process (idempotent)."""
    if not SHARED_LOADER._applied:
        create = _one_per_key(SHARED_LOADER.original())
        SHARED_LOADER.apply(lambda search_path_string=None: create(search_path_string))


def install() -> None:
    """Apply the start-up patches above (idempotent); before moto's service modules are imported
    (it imports moto's CloudFormation, and through it every service it supports)."""
    install_shared_botocore_loader()
    deferred.install()
    if not MOTO_LOADER._applied:
        MOTO_LOADER.apply(_one_per_key(MOTO_LOADER.original()))
    if not URL_BUILDER._applied:
        URL_BUILDER.apply(_compiled_on_first_use(URL_BUILDER.original()))
    if not PARSE_TEMPLATE._applied:
        PARSE_TEMPLATE.apply(_json_first(PARSE_TEMPLATE.original()))


def _one_per_key(create: Callable[..., Any]) -> Callable[..., Any]:
    """`create` called once per distinct argument tuple; the result shared after that."""
    made: dict[Any, Any] = {}
    lock = threading.Lock()

    def shared(*args: Any) -> Any:
        with lock:
            if args not in made:
                made[args] = create(*args)
            return made[args]

    return shared


def _compiled_on_first_use(compile_builder: Callable[..., Any]) -> Callable[..., Any]:
    def _compile_builder(rule: Any, append_unknown: bool = True) -> Callable[..., Any]:
        attribute = "_build_unknown" if append_unknown else "_build"

        def build(bound_rule: Any, *args: Any, **kwargs: Any) -> Any:
            compiled = compile_builder(rule, append_unknown)
            setattr(rule, attribute, compiled.__get__(rule, None))  # as Rule.compile binds it
            return compiled(bound_rule, *args, **kwargs)

        return build

    return _compile_builder


def _json_first(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_template(template: str) -> Any:
        if isinstance(template, str) and template.lstrip().startswith("{"):
            try:
                return json.loads(template)
            except ValueError:
                pass
        return parse(template)

    return staticmethod(parse_template)

