"""What moto does at import that the local cloud never uses, done on first use instead.

The cloud imports moto's CloudFormation, which imports every service it supports. Two of those
imports do costly work for APIs the cloud does not call:

- moto.apigateway.models imports openapi-spec-validator (~0.15 s: pydantic-settings, jsonschema)
  to validate the OpenAPI document of ImportRestApi/PutRestApi with failOnWarnings. moto's module
  is imported with stand-ins for the two names it takes from that package; the first validation
  imports the real package and puts the real names in place, before moto's own
  `except OpenAPIValidationError` looks the name up.
- moto.ec2.models.instance_types reads every region's instance-type offerings (90 gzipped JSON
  files, 150k dicts: ~0.1 s and ~50 MB) for DescribeInstanceTypeOfferings, RunInstances'
  placement check and DescribeSpotPriceHistory. Each region's file is read when it is first
  looked up, as moto reads it.

install() must run before anything imports those modules; if one is already imported, its cost
is already paid and it is left as it is.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

from gameday.localcloud.motoglue import patches

OPENAPI_VALIDATE = patches.declare(
    "moto.apigateway.models:validate", kind="replace",
    why="a stand-in until the first OpenAPI validation, which imports openapi_spec_validator")
OPENAPI_ERROR = patches.declare(
    "moto.apigateway.models:OpenAPIValidationError", kind="replace",
    why="a stand-in until the first OpenAPI validation puts openapi_spec_validator's class in place")
LOAD_RESOURCE = patches.declare(
    "moto.utilities.utils:load_resource", kind="wrap", signature="(resource: str) -> Any",
    why="while moto.ec2 is imported: the instance-type offering files are noted, not read")
OFFERINGS = patches.declare(
    "moto.ec2.models.instance_types:INSTANCE_TYPE_OFFERINGS", kind="replace",
    why="each location type's {region: offerings} replaced by a mapping that reads a region's file on first use")

OFFERINGS_DIR = "ec2/resources/instance_type_offerings/"


def install() -> None:
    """Before moto's service modules are imported (idempotent)."""
    _import_ec2_without_offerings()
    _import_apigateway_without_openapi()


# ---------------------------------------------------------------- openapi-spec-validator

class _OpenApiNotImported(Exception):
    """Stands in for OpenAPIValidationError until the first validation; never raised."""


def _import_apigateway_without_openapi() -> None:
    if "moto.apigateway.models" in sys.modules or "openapi_spec_validator" in sys.modules:
        return
    names = ("openapi_spec_validator", "openapi_spec_validator.validation",
             "openapi_spec_validator.validation.exceptions")
    stand_ins = {name: types.ModuleType(name) for name in names}
    stand_ins[names[0]].validate = _validate_on_first_use  # type: ignore[attr-defined]
    stand_ins[names[2]].OpenAPIValidationError = _OpenApiNotImported  # type: ignore[attr-defined]
    sys.modules.update(stand_ins)
    try:
        importlib.import_module("moto.apigateway.models")
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _validate_on_first_use(*args: Any, **kwargs: Any) -> Any:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    OPENAPI_ERROR.apply(OpenAPIValidationError)
    OPENAPI_VALIDATE.apply(validate)
    return validate(*args, **kwargs)


# ---------------------------------------------------------------- EC2 instance-type offerings

class _RegionOfferings(dict):
    """{region: offerings} of one location type; a region's file is read on first look-up."""

    def __init__(self, location_type: str, files: dict[str, str], load: Callable[[str], Any]) -> None:
        super().__init__()
        self._location_type, self._files, self._load = location_type, files, load

    def __missing__(self, region: str) -> list[dict[str, Any]]:
        if region not in self._files:
            raise KeyError(region)
        offerings = self._load(self._files[region])
        for offering in offerings:  # as moto does when it reads them at import
            offering["LocationType"] = self._location_type
        self[region] = offerings
        return offerings

    def get(self, region: str, default: Any = None) -> Any:
        return self[region] if region in self._files else default

    def __contains__(self, region: object) -> bool:
        return region in self._files

    def _everything(self) -> dict[str, Any]:
        return {region: self[region] for region in self._files}  # moto's (directory) order

    def __iter__(self) -> Any:
        return iter(self._everything())

    def __len__(self) -> int:
        return len(self._files)

    def keys(self) -> Any:
        return self._everything().keys()

    def values(self) -> Any:
        return self._everything().values()

    def items(self) -> Any:
        return self._everything().items()


def _import_ec2_without_offerings() -> None:
    if "moto.ec2.models.instance_types" in sys.modules:
        return
    load = LOAD_RESOURCE.original()
    noted: dict[str, dict[str, str]] = {}
    importing = True

    def note_offerings(resource: str) -> Any:
        if importing and resource.startswith(OFFERINGS_DIR):
            location_type, filename = resource[len(OFFERINGS_DIR):].split("/")
            noted.setdefault(location_type, {})[filename.split(".")[0]] = resource
            return []
        return load(resource)

    LOAD_RESOURCE.apply(note_offerings)
    try:
        importlib.import_module("moto.ec2.models.instance_types")
    finally:
        importing = False
        LOAD_RESOURCE.apply(load)
    offerings = OFFERINGS.original()
    for location_type, files in noted.items():
        offerings[location_type] = _RegionOfferings(location_type, files, load)
