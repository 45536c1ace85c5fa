"""The start-up savings (gameday/localcloud/process/startup.py, deferred.py) change what start-up costs, never
what the cloud does: deferred moto work gives the same answers when it is finally done, lazily
compiled URL builders build the same URLs, shared clients are the same clients."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import boto3
import yaml
from werkzeug.routing import Map, Rule

from gameday.localcloud.cloudformation.provisioning import SharedClients
from gameday.localcloud.process import startup
from gameday.provision import INFRA_DIR, _cfn_tag, load_template

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: in a test worker, moto's modules may be imported already (and then
# nothing is deferred). Prints what the cloud process would see, as JSON.
DEFERRED_PROBE = r"""
import json, os, sys
from gameday.localcloud.process import startup
startup.install()
report = {"openapi_imported_at_start": "openapi_spec_validator" in sys.modules}

from moto.utilities.utils import load_resource
import moto.ec2.models.instance_types as it
from moto.ec2.models import ec2_backends
ec2 = ec2_backends["123456789012"]["eu-west-1"]
expected = load_resource("ec2/resources/instance_type_offerings/availability-zone/eu-west-1.json")
for offering in expected:
    offering["LocationType"] = "availability-zone"
found = ec2.describe_instance_type_offerings("availability-zone", {})
report["offerings_equal"] = found == expected
report["offering_regions"] = sorted(it.INSTANCE_TYPE_OFFERINGS["region"])
report["offering_files"] = sorted(f.split(".")[0] for f in os.listdir(os.path.join(
    os.path.dirname(it.__file__), "..", "resources", "instance_type_offerings", "region")))
report["unknown_region"] = it.INSTANCE_TYPE_OFFERINGS["region"].get("nowhere-1", "default")
report["loader_restored"] = sys.modules["moto.utilities.utils"].load_resource is load_resource

from moto.apigateway.exceptions import InvalidOpenAPIDocumentException
from moto.apigateway.models import apigateway_backends
apigw = apigateway_backends["123456789012"]["eu-west-1"]
bad = {"openapi": "3.0.0", "info": {"title": "t", "description": "d"}, "paths": {"/x": {"get": {"responses": 1}}}}
try:
    apigw.import_rest_api(bad, fail_on_warnings=True)
    report["invalid_document"] = "accepted"
except InvalidOpenAPIDocumentException:
    report["invalid_document"] = "InvalidOpenAPIDocumentException"
good = {"openapi": "3.0.0", "info": {"title": "t", "description": "d", "version": "1"}, "paths": {}}
report["valid_document"] = apigw.import_rest_api(good, fail_on_warnings=True).name
print(json.dumps(report))
"""


def test_deferred_moto_work_gives_moto_answers_when_done() -> None:
    out = subprocess.run([sys.executable, "-c", DEFERRED_PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["openapi_imported_at_start"] is False
    assert report["offerings_equal"] is True
    assert report["offering_regions"] == report["offering_files"]
    assert report["unknown_region"] == "default"
    assert report["loader_restored"] is True
    assert report["invalid_document"] == "InvalidOpenAPIDocumentException"  # moto's own except clause
    assert report["valid_document"] == "t"


def test_url_builders_compiled_on_first_use_build_the_same_urls() -> None:
    startup.install()
    url_map = Map([Rule("/restapis/<api_id>/stages/<name>", endpoint="stage")])
    urls = url_map.bind("example.com")
    assert urls.build("stage", {"api_id": "a1", "name": "prod"}) == "/restapis/a1/stages/prod"
    assert urls.build("stage", {"api_id": "a1", "name": "prod", "x": "1"}) == "/restapis/a1/stages/prod?x=1"
    assert urls.build("stage", {"api_id": "b2", "name": "dev"}) == "/restapis/b2/stages/dev"  # compiled now


def test_the_collector_is_paused_until_ready_then_back() -> None:
    was_enabled = gc.isenabled()
    try:
        startup.pause_collector()
        assert not gc.isenabled()
        startup.settle_collector()
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        (gc.enable if was_enabled else gc.disable)()


def test_provisioner_and_supplements_share_one_client_per_service_and_region() -> None:
    clients = SharedClients(boto3.session.Session(aws_access_key_id="t", aws_secret_access_key="t"))
    s3 = clients.client("s3", region_name="eu-west-1", endpoint_url="http://127.0.0.1:1")
    assert clients.client("s3", region_name="eu-west-1", endpoint_url="http://127.0.0.1:1") is s3
    assert clients.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1") is not s3


def test_templates_load_as_pyyaml_pure_python_loader_loads_them() -> None:
    class PurePython(yaml.SafeLoader):
        pass

    PurePython.add_multi_constructor("!", _cfn_tag)
    for path in sorted(INFRA_DIR.glob("*.yaml")):
        assert load_template(path) == yaml.load(path.read_text(), Loader=PurePython), path.name
