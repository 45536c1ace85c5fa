"""What moto's CloudFormation (5.2.5) drops or mishandles, supplied after each stack is created.

provision() calls a CfnSupplements instance (its `hooks`) with each completed stack. For every
resource of the stack's template, resolved exactly as moto resolved it (its own ResourceMap,
so Ref/GetAtt/Sub/If/Conditions agree), it supplies:

- AWS::ApiGateway::Stage: skipped by moto -> CreateStage (if the stage does not exist yet).
- AWS::DynamoDB::GlobalTable: skipped by moto -> CreateTable in every replica region with
  streams, then register_global_table(...) (gameday/localcloud/dynamodb/global_tables_api.py) so the tables
  replicate as 2019.11.21 replicas, with its MultiRegionConsistency and GlobalTableWitnesses (a
  witness region gets no table). A layout multi-Region strong consistency refuses fails the stack
  (SupplementError with AWS's reason), and the tables just created are deleted again.
- AWS::Route53::HealthCheck: moto keeps only Type/IP/Port/Path/FQDN/SearchString/Interval/
  Threshold -> UpdateHealthCheck for Inverted, Disabled, EnableSNI, Regions, and
  ChangeTagsForResource for HealthCheckTags.
- AWS::Route53::HostedZone and RecordSet: the API stores names dot-terminated, moto's CFN stores
  them as written -> names normalised to the dot-terminated form so DNS and record evaluation
  see one spelling.
- AWS::Lambda::Function with Code in S3: moto creates the function even when the object does not
  exist -> the stack fails (SupplementError naming the resource), as on AWS.
- On teardown (`deleted`): moto's stack deletion leaves REST APIs, health checks and hosted zones
  behind -> deleted; the supplied global-table replicas are deregistered and deleted.
- RecordSet deletion: moto deletes every record with that name and type (all regions'
  failover/latency records) -> patched (RecordSet.delete) to delete only that record.
- RecordSet: a CNAME at the zone apex, which Route 53 refuses (InvalidChangeBatch) -> the stack
  fails (SupplementError), and the record moto added is removed.
- AWS::CertificateManager::Certificate, AWS::ApiGateway::DomainName and BasePathMapping: unknown
  to moto, so Ref/GetAtt/Outputs on them would be empty -> given to moto's CloudFormation as
  models (cloudformation/custom_domains.py), installed with the patches below.
AWS::Lambda::Permission and RecordSet's Failover/Region/
SetIdentifier/HealthCheckId/TTL are handled correctly by moto (tests/localcloud/test_provision.py checks).
The API calls go through the AWS endpoint like any client; only resolution and name
normalisation read moto's objects.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import boto3
from botocore.exceptions import ClientError

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue.patches import declare
from gameday.provision import CreatedStack, DeletedStack

# Read, not replaced: a moto upgrade that moves these must fail tests/localcloud/test_patch_points.py.
CLEAN_JSON = declare(
    "moto.cloudformation.parsing:clean_json",
    why="read-only use (never applied): resolves a skipped resource's properties with the stack's own ResourceMap",
    kind="wrap", signature="(resource_json: Any, resources_map: 'ResourceMap') -> Any")
GET_STACK = declare(
    "moto.cloudformation.models:CloudFormationBackend.get_stack",
    why="read-only use (never applied): the stack's ResourceMap and condition values",
    kind="wrap", signature="(self, name_or_stack_id: 'str') -> 'Stack'")

RECORD_DELETE = declare(
    "moto.route53.models:RecordSet.delete",
    why="moto deletes every record with the stack record's name and type (all regions' failover/latency "
        "records); AWS deletes only that record (same SetIdentifier)",
    kind="replace", signature="(self, account_id: str, region: str) -> None")

LAMBDA_FROM_TEMPLATE = declare(
    "moto.awslambda.models:LambdaFunction.create_from_cloudformation_json",
    why="CloudFormation hands a Ref'd Number parameter on as a string ('the parameter value becomes a "
        "string'), so a function's Environment.Variables are strings; moto keeps the number, which "
        "GetFunctionConfiguration then shows and UpdateFunctionConfiguration refuses",
    kind="wrap",
    signature="(resource_name: 'str', cloudformation_json: 'dict[str, Any]', account_id: 'str', "
              "region_name: 'str', **kwargs: 'Any') -> 'LambdaFunction'")

SUPPLIED_TYPES = ("AWS::ApiGateway::Stage", "AWS::DynamoDB::GlobalTable")


def _variables_as_strings(original: Any) -> Any:
    def create(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
               region_name: str, **kwargs: Any) -> Any:
        environment = (cloudformation_json.get("Properties") or {}).get("Environment") or {}
        variables = environment.get("Variables")
        if isinstance(variables, dict):
            for key, value in variables.items():
                if isinstance(value, bool):
                    variables[key] = "true" if value else "false"
                elif isinstance(value, (int, float)):
                    variables[key] = str(value)
        return original(resource_name, cloudformation_json, account_id, region_name, **kwargs)

    return classmethod(create)


def _delete_this_record(self: Any, account_id: str, region: str) -> None:
    """RecordSet.delete as AWS does it: only this record (name, type and SetIdentifier)."""
    backend = moto_access.route53()
    zone = backend.get_hosted_zone_by_name(self.hosted_zone_name) if self.hosted_zone_name else None
    if zone is None:
        zone = backend.get_hosted_zone(self.hosted_zone_id)
    zone.rrsets = [r for r in zone.rrsets
                   if not (r is self or (r.name.rstrip(".") == self.name.rstrip(".") and r.type == self.type
                                         and r.set_identifier == self.set_identifier))]


def install_patches() -> None:
    """Apply the moto fixes this module declares (idempotent); called when the cloud starts."""
    from gameday.localcloud.cloudformation import custom_domains

    RECORD_DELETE.apply(_delete_this_record)
    if not getattr(LAMBDA_FROM_TEMPLATE, "_applied", False):
        LAMBDA_FROM_TEMPLATE.apply(_variables_as_strings(LAMBDA_FROM_TEMPLATE.original()))
    custom_domains.install()


class SupplementError(Exception):
    """The stack is one AWS would have failed (moto accepted it): the message names the resource."""


class _QuietSupplied(logging.Filter):
    """moto logs 'No Moto CloudFormation support for X' for the types supplied here: expected noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.args and any(t in record.args for t in SUPPLIED_TYPES))


def _quiet_moto() -> None:
    logger = logging.getLogger("moto")
    if not any(isinstance(f, _QuietSupplied) for f in logger.filters):
        logger.addFilter(_QuietSupplied())
    for rtype in SUPPLIED_TYPES:
        warnings.filterwarnings("ignore", message=f"Tried to parse {rtype} but it's not supported")


class CfnSupplements:
    """The `hooks` callable for provision(): supplies what moto's CloudFormation dropped."""

    def __init__(self, aws_endpoint_url: str, session: Any = None) -> None:
        """`session`: a boto3 Session to build the clients with (the provisioner's, so that the two
        share clients); by default a new one."""
        self._endpoint = aws_endpoint_url
        self._session = session or boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        self._clients: dict[tuple[str, str], Any] = {}
        self.pending: list[str] = []  # what could not be undone (a global table left registered)
        _quiet_moto()
        install_patches()

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:  # building a botocore client costs ~0.1 s: build each once
            self._clients[key] = self._session.client(service, region_name=region, endpoint_url=self._endpoint)
        return self._clients[key]

    def __call__(self, created: CreatedStack) -> None:
        handlers = {
            "AWS::Lambda::Function": self._function_code,
            "AWS::ApiGateway::Stage": self._stage,
            "AWS::DynamoDB::GlobalTable": self._global_table,
            "AWS::Route53::HealthCheck": self._health_check,
            "AWS::Route53::HostedZone": self._hosted_zone,
            "AWS::Route53::RecordSet": self._record_set,
        }
        stack = moto_access.cloudformation(created.region).get_stack(created.stack_id)
        resource_map = stack.resource_map
        for logical_id, resource in created.template["Resources"].items():
            handler = handlers.get(resource["Type"])
            if handler is None:
                continue
            condition = resource.get("Condition")
            if condition and not resource_map.lazy_condition_map[condition]:
                continue
            properties = CLEAN_JSON.original()(copy.deepcopy(resource.get("Properties") or {}), resource_map)
            handler(created, logical_id, properties, resource_map)

    def deleted(self, gone: DeletedStack) -> None:
        """teardown's on_deleted: remove what moto's stack deletion leaves behind (REST APIs,
        health checks, hosted zones, the supplied global-table replicas)."""
        r53 = self.client("route53", "us-east-1")
        stack = moto_access.cloudformation(gone.region).get_stack(gone.stack_id)
        for logical_id, resource in gone.template["Resources"].items():
            rtype, physical = resource["Type"], gone.physical_ids.get(logical_id)
            if rtype == "AWS::Route53::HealthCheck" and physical:
                if any(hc["Id"] == physical for hc in r53.list_health_checks()["HealthChecks"]):
                    r53.delete_health_check(HealthCheckId=physical)
            elif rtype == "AWS::ApiGateway::RestApi" and physical:  # with its (supplied) stages
                apigw = self.client("apigateway", gone.region)
                if any(api["id"] == physical for api in apigw.get_rest_apis()["items"]):
                    apigw.delete_rest_api(restApiId=physical)
            elif rtype == "AWS::Route53::HostedZone" and physical:
                if any(z["Id"].split("/")[-1] == physical for z in r53.list_hosted_zones()["HostedZones"]):
                    r53.delete_hosted_zone(Id=physical)
            elif rtype in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
                if rtype == "AWS::DynamoDB::Table" and logical_id not in gone.physical_ids:
                    continue  # not created (its Condition was false)
                props = CLEAN_JSON.original()(copy.deepcopy(resource.get("Properties") or {}), stack.resource_map)
                from gameday.localcloud.dynamodb.global_tables_api import deregister_global_table

                try:  # stop replicating into tables that are going away
                    deregister_global_table(props["TableName"])
                except Exception as exc:  # replication stopped: nothing to deregister
                    self.pending.append(f"deregister_global_table({props['TableName']!r}): {exc}")
                if rtype == "AWS::DynamoDB::Table":
                    continue  # moto's stack deletion deleted it
                for region in [r["Region"] for r in props.get("Replicas") or []] or [gone.region]:
                    ddb = self.client("dynamodb", region)
                    if props["TableName"] in ddb.list_tables()["TableNames"]:
                        ddb.delete_table(TableName=props["TableName"])

    # ------------------------------------------------------------ Lambda
    def _function_code(self, created: CreatedStack, logical_id: str, props: dict[str, Any], resource_map: Any) -> None:
        """moto creates a function whose S3 code object does not exist (its S3 lookup returns None
        instead of raising); AWS fails the stack with NoSuchKey. Fail as AWS does."""
        code = props.get("Code") or {}
        if "S3Bucket" not in code:
            return
        try:
            self.client("s3", created.region).head_object(Bucket=code["S3Bucket"], Key=code.get("S3Key", ""))
        except ClientError:
            raise SupplementError(f"{logical_id}: Code s3://{code['S3Bucket']}/{code.get('S3Key', '')} does not exist "
                                  "(S3 Error Code: NoSuchKey)") from None

    # ------------------------------------------------------------ API Gateway
    def _stage(self, created: CreatedStack, logical_id: str, props: dict[str, Any], resource_map: Any) -> None:
        api_id, stage_name = props["RestApiId"], props["StageName"]
        deployment = props.get("DeploymentId")
        deployment_id = deployment if isinstance(deployment, str) else getattr(deployment, "id", None)
        apigw = self.client("apigateway", created.region)
        existing = {s["stageName"] for s in apigw.get_stages(restApiId=api_id)["item"]}
        if stage_name in existing:
            return
        if deployment_id is None:  # a Stage without DeploymentId: deploy now, as AWS would need one anyway
            deployment_id = apigw.create_deployment(restApiId=api_id)["id"]
        kwargs: dict[str, Any] = {"restApiId": api_id, "stageName": stage_name, "deploymentId": deployment_id}
        if props.get("Description"):
            kwargs["description"] = props["Description"]
        if props.get("Variables"):
            kwargs["variables"] = {k: str(v) for k, v in props["Variables"].items()}
        apigw.create_stage(**kwargs)

    # ------------------------------------------------------------ DynamoDB global table (2019.11.21)
    def _global_table(self, created: CreatedStack, logical_id: str, props: dict[str, Any], resource_map: Any) -> None:
        name = props["TableName"]
        regions = [r["Region"] for r in props.get("Replicas") or []] or [created.region]
        witness = _witness(logical_id, props)
        made = self._replica_tables(name, regions, props)
        from gameday.localcloud.dynamodb.global_tables_api import register_global_table

        try:
            register_global_table(name, regions, "2019.11.21", witness=witness,
                                  consistency=props.get("MultiRegionConsistency", "EVENTUAL"))
        except ValueError as exc:   # AWS refuses the table: none is left behind
            for region in made:
                self.client("dynamodb", region).delete_table(TableName=name)
            raise SupplementError(f"{logical_id}: {exc}") from None

    def _replica_tables(self, name: str, regions: list[str], props: dict[str, Any]) -> list[str]:
        """CreateTable with streams in each replica region that lacks the table; the regions it was made in."""
        view = (props.get("StreamSpecification") or {}).get("StreamViewType", "NEW_AND_OLD_IMAGES")
        made = []
        for region in regions:
            ddb = self.client("dynamodb", region)
            if name in ddb.list_tables()["TableNames"]:
                continue
            kwargs: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "StreamSpecification": {"StreamEnabled": True, "StreamViewType": view},
            }
            if props.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
                kwargs["BillingMode"] = "PAY_PER_REQUEST"
            else:
                kwargs["ProvisionedThroughput"] = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            for index in props.get("GlobalSecondaryIndexes") or []:
                kwargs.setdefault("GlobalSecondaryIndexes", []).append(
                    {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")})
            ddb.create_table(**kwargs)
            made.append(region)
        return made

    # ------------------------------------------------------------ Route 53
    def _health_check(self, created: CreatedStack, logical_id: str, props: dict[str, Any], resource_map: Any) -> None:
        health_check = resource_map[logical_id]
        check_id = health_check.id
        config = props.get("HealthCheckConfig") or {}
        update: dict[str, Any] = {}
        for key in ("Inverted", "Disabled", "EnableSNI"):
            if key in config:
                update[key] = _as_bool(config[key])
        if config.get("Regions"):
            update["Regions"] = list(config["Regions"])
        r53 = self.client("route53", "us-east-1")
        if update:
            r53.update_health_check(HealthCheckId=check_id, **update)
        tags = [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in props.get("HealthCheckTags") or []]
        if tags:
            r53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=check_id, AddTags=tags)

    def _hosted_zone(self, created: CreatedStack, logical_id: str, props: dict[str, Any], resource_map: Any) -> None:
        zone = resource_map[logical_id]
        if not zone.name.endswith("."):
            old = zone.name
            zone.name = old + "."
            for rrset in zone.rrsets:
                if rrset.name == old:
                    rrset.name = zone.name

    def _record_set(self, created: CreatedStack, logical_id: str, props: dict[str, Any], resource_map: Any) -> None:
        record = resource_map[logical_id]
        if record is not None and not record.name.endswith("."):
            record.name += "."
        if record is not None and str(record.type).upper() == "CNAME":
            from gameday.localcloud.route53.api import apex_cname

            zone = moto_access.route53().get_hosted_zone(record.hosted_zone_id) if record.hosted_zone_id else None
            if zone is not None and apex_cname(zone.name, {"Name": record.name, "Type": "CNAME"}):
                zone.rrsets = [r for r in zone.rrsets if r is not record]
                raise SupplementError(f"{logical_id}: InvalidChangeBatch: RRSet of type CNAME with DNS name "
                                      f"{record.name} is not permitted at apex in zone {zone.name}")
        if record is not None and isinstance(record.ttl, str) and record.ttl.isdigit():
            record.ttl = int(record.ttl)


def _witness(logical_id: str, props: dict[str, Any]) -> str | None:
    """The GlobalTableWitnesses region (AWS takes at most one), or None."""
    witnesses = [w.get("Region") for w in props.get("GlobalTableWitnesses") or []]
    if len(witnesses) > 1:
        raise SupplementError(f"{logical_id}: GlobalTableWitnesses takes at most 1 region, got {len(witnesses)}")
    return witnesses[0] if witnesses else None


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)
