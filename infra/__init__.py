"""The reference deployment: CloudFormation templates and the reference Lambda handlers."""
