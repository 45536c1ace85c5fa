"""CloudFormation resource types that moto 5.2.5 does not know, for the regional custom-domain shape:
AWS::CertificateManager::Certificate, AWS::ApiGateway::DomainName, AWS::ApiGateway::BasePathMapping.

moto skips a type it does not know, so Ref and GetAtt on it resolve to nothing and the stack's
Outputs (RegionalDomainName, read by the provisioner before any supplement could run) would be
empty. Supplying them after the stack, as supplements.py does for the others, is too late; so
they are given to moto's CloudFormation as models of its own (it finds models as subclasses of
CloudFormationModel, through a cached map that is cleared once they are defined), and each
creates its resource through moto's backend as the API would, with the API's checks:
- Certificate: issued by the local CA into that region's ACM, ISSUED (tls/acm.py); Ref = ARN.
- DomainName: CreateDomainName, which needs an ISSUED certificate in the region that covers the
  name (apigateway/custom_domains.py); Ref = the name; GetAtt RegionalDomainName,
  RegionalHostedZoneId, DistributionDomainName, DistributionHostedZoneId.
- BasePathMapping: CreateBasePathMapping (the stage must exist).
Deleting the stack deletes them (mapping, domain, certificate).
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation.exceptions import UnformattedGetAttTemplateException
from moto.core.common_models import CloudFormationModel

from gameday.localcloud.motoglue import access as moto_access
from gameday.localcloud.motoglue.patches import declare
from gameday.localcloud.tls import acm

MODEL_MAP = declare("moto.cloudformation.parsing:get_model_map", kind="call",
                    signature="() -> dict[str, type[moto.core.common_models.CloudFormationModel]]",
                    why="its cache is cleared so that the models defined here are found")
NAME_TYPE_MAP = declare("moto.cloudformation.parsing:get_name_type_map", kind="call",
                        signature="() -> dict[str, str]",
                        why="its cache is cleared so that the models defined here are found")

TYPES = ("AWS::CertificateManager::Certificate", "AWS::ApiGateway::DomainName", "AWS::ApiGateway::BasePathMapping")


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in props.get("Tags") or []]


class CfnCertificate(CloudFormationModel):
    def __init__(self, arn: str, region: str) -> None:
        self.arn = arn
        self.region = region

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CertificateManager::Certificate"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any,
                                        account_id: str, region_name: str, **kwargs: Any) -> CfnCertificate:
        props = cloudformation_json.get("Properties") or {}
        arn = acm.issue_into_acm(region_name, str(props["DomainName"]),
                                 [str(n) for n in props.get("SubjectAlternativeNames") or []])
        tags = _tags(props)
        if tags:
            acm.acm_backend(region_name).add_tags_to_certificate(arn, tags)
        return cls(arn, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        acm.acm_backend(self.region)._certificates.pop(self.arn, None)


class CfnDomainName(CloudFormationModel):
    ATTRIBUTES = {"RegionalDomainName": "regional_domain_name", "RegionalHostedZoneId": "regional_hosted_zone_id",
                  "DistributionDomainName": "distribution_domain_name",
                  "DistributionHostedZoneId": "distribution_hosted_zone_id"}

    def __init__(self, domain: Any, region: str) -> None:
        self.domain = domain
        self.region = region

    @property
    def physical_resource_id(self) -> str:
        return str(self.domain.domain_name)

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DomainName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::DomainName"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name in self.ATTRIBUTES:
            return getattr(self.domain, self.ATTRIBUTES[attribute_name])
        raise UnformattedGetAttTemplateException()

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any,
                                        account_id: str, region_name: str, **kwargs: Any) -> CfnDomainName:
        props = cloudformation_json.get("Properties") or {}
        endpoint = props.get("EndpointConfiguration") or {}
        types = [str(t).upper() for t in endpoint.get("Types") or []]
        domain = moto_access.apigateway(region_name).create_domain_name(
            domain_name=str(props["DomainName"]).rstrip(".").lower(), certificate_name=None,
            tags={t["Key"]: t["Value"] for t in _tags(props)} or None,
            certificate_arn=props.get("CertificateArn"), certificate_body=None, certificate_private_key=None,
            certificate_chain=None, regional_certificate_name=None,
            regional_certificate_arn=props.get("RegionalCertificateArn"),
            endpoint_configuration={"types": types} if types else None,
            security_policy=props.get("SecurityPolicy"))
        return cls(domain, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        backend = moto_access.apigateway(self.region)
        name = self.domain.domain_name
        backend.base_path_mappings.pop(name, None)
        backend.domain_names.pop(name, None)


class CfnBasePathMapping(CloudFormationModel):
    def __init__(self, domain_name: str, base_path: str, region: str) -> None:
        self.domain_name = domain_name
        self.base_path = base_path
        self.region = region

    @property
    def physical_resource_id(self) -> str:
        return f"{self.domain_name}/{self.base_path}"

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ApiGateway::BasePathMapping"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @classmethod
    def create_from_cloudformation_json(cls, resource_name: str, cloudformation_json: Any,
                                        account_id: str, region_name: str, **kwargs: Any) -> CfnBasePathMapping:
        props = cloudformation_json.get("Properties") or {}
        domain_name = str(props["DomainName"]).rstrip(".").lower()
        mapping = moto_access.apigateway(region_name).create_base_path_mapping(
            domain_name, str(props["RestApiId"]), props.get("BasePath") or "", props.get("Stage") or None)
        return cls(domain_name, str(mapping.base_path), region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        mappings = moto_access.apigateway(self.region).base_path_mappings.get(self.domain_name) or {}
        mappings.pop(self.base_path, None)


def install() -> None:
    """Make moto's CloudFormation find the models above (idempotent; before the first stack)."""
    MODEL_MAP.original().cache_clear()
    NAME_TYPE_MAP.original().cache_clear()
