"""A CloudFormation template for scheduled game days on AWS: the runner role with exactly the
policy `gameday policy` printed, a CodeBuild project that runs `gameday run` with it, reports to
S3, and an EventBridge Scheduler schedule that starts the project."""

from __future__ import annotations

from typing import Any


def runner_template(policy: dict[str, Any], *, schedule: str = "cron(0 9 ? * TUE *)") -> dict[str, Any]:
    """The template (a dict, dumped as JSON or YAML by the caller)."""
    codebuild_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    scheduler_trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    buildspec = "\n".join([
        "version: 0.2",
        "phases:",
        "  install:",
        "    commands:",
        "      - python3 -m pip install --quiet \"gameday==${GAMEDAY_VERSION}\"",
        "  build:",
        "    commands:",
        "      - aws s3 cp \"s3://${REPORTS_BUCKET}/deployment.yaml\" deployment.yaml",
        "      - aws s3 sync \"s3://${REPORTS_BUCKET}/reports\" reports --quiet || true",
        "      - gameday run --deployment deployment.yaml --report-dir reports --wait-lock 900 || code=$?",
        "      - aws s3 sync reports \"s3://${REPORTS_BUCKET}/reports\" --quiet",
        "      - exit ${code:-0}",
    ])
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "gameday scheduled runner: a least-privilege role, a CodeBuild project running "
                       "`gameday run`, reports in S3, and an EventBridge Scheduler schedule.",
        "Parameters": {
            "GamedayVersion": {"Type": "String", "Default": "0.2.0"},
            "ScheduleExpression": {"Type": "String", "Default": schedule,
                         "Description": "EventBridge Scheduler expression (UTC)"},
        },
        "Resources": {
            "ReportsBucket": {
                "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                    "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                },
            },
            "RunnerRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": codebuild_trust,
                    "Policies": [
                        {"PolicyName": "gameday-game-days", "PolicyDocument": policy},
                        {"PolicyName": "gameday-reports-and-logs", "PolicyDocument": {
                            "Version": "2012-10-17", "Statement": [
                                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                                 "Resource": {"Fn::Sub": "${ReportsBucket.Arn}/*"}},
                                {"Effect": "Allow", "Action": "s3:ListBucket",
                                 "Resource": {"Fn::GetAtt": ["ReportsBucket", "Arn"]}},
                                {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                               "logs:PutLogEvents"],
                                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                                         "${AWS::AccountId}:log-group:/aws/codebuild/*"}},
                            ]}},
                    ],
                },
            },
            "Project": {
                "Type": "AWS::CodeBuild::Project",
                "Properties": {
                    "ServiceRole": {"Fn::GetAtt": ["RunnerRole", "Arn"]},
                    "Artifacts": {"Type": "NO_ARTIFACTS"},
                    "Source": {"Type": "NO_SOURCE", "BuildSpec": buildspec},
                    "TimeoutInMinutes": 120,
                    "Environment": {
                        "Type": "LINUX_CONTAINER", "ComputeType": "BUILD_GENERAL1_SMALL",
                        "Image": "aws/codebuild/standard:7.0",
                        "EnvironmentVariables": [
                            {"Name": "GAMEDAY_VERSION", "Value": {"Ref": "GamedayVersion"}},
                            {"Name": "REPORTS_BUCKET", "Value": {"Ref": "ReportsBucket"}},
                        ],
                    },
                },
            },
            "SchedulerRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": scheduler_trust,
                    "Policies": [{"PolicyName": "start-the-game-day", "PolicyDocument": {
                        "Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "codebuild:StartBuild",
                             "Resource": {"Fn::GetAtt": ["Project", "Arn"]}}]}}],
                },
            },
            "Schedule": {
                "Type": "AWS::Scheduler::Schedule",
                "Properties": {
                    "ScheduleExpression": {"Ref": "ScheduleExpression"},
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {"Arn": {"Fn::GetAtt": ["Project", "Arn"]},
                               "RoleArn": {"Fn::GetAtt": ["SchedulerRole", "Arn"]}},
                },
            },
        },
        "Outputs": {
            "RunnerRoleArn": {"Value": {"Fn::GetAtt": ["RunnerRole", "Arn"]}},
            "ReportsBucketName": {"Value": {"Ref": "ReportsBucket"}},
        },
    }
