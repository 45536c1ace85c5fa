"""The embedded cloud with a multi-Region strongly consistent table, started the ways a team starts
it: `LocalCloud(consistency=..., witness=...)` (what `gameday local up --consistency strong` runs),
`gameday run --consistency strong --witness R`, and plain pytest with GAMEDAY_LOCAL_CONSISTENCY;
each checked with boto3 over HTTP against the cloud's AWS endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from gameday.localcloud.process.launcher import LocalCloud
from gameday.plugin import Setting, Settings, _second_cloud_layout
from tests.support.run_helpers import gameday

EU = ["eu-west-1", "eu-west-2", "eu-west-3"]   # one MRSC region set

# A team's game day that reads the embedded cloud's table in every EU region and leaves what it saw.
TEAM_TEST = '''
import json, os
import boto3, yaml

def test_reads_the_table(deployment_file):
    path, cloud = deployment_file
    described = yaml.safe_load(path.read_text())
    seen = {}
    for region in ("eu-west-1", "eu-west-2", "eu-west-3"):
        ddb = boto3.client("dynamodb", region_name=region, endpoint_url=described["aws_endpoint_url"],
                           aws_access_key_id="x", aws_secret_access_key="x")
        names = ddb.list_tables()["TableNames"]
        table = ddb.describe_table(TableName=described["table"]["name"])["Table"] if described["table"]["name"] in names else None
        seen[region] = table and {k: table.get(k) for k in ("MultiRegionConsistency", "GlobalTableWitnesses")}
    seen["version"] = described["table"]["version"]
    seen["regions"] = [r["name"] for r in described["regions"]]
    with open(os.environ["MRSC_SEEN"], "w") as out:
        json.dump(seen, out)
'''


def tables(endpoint: str, region: str) -> Any:
    return boto3.client("dynamodb", region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def assert_two_replicas_and_a_witness(seen: dict[str, Any]) -> None:
    assert seen["version"] == "2019.11.21" and seen["regions"] == EU[:2], seen
    assert seen["eu-west-3"] is None, seen   # the witness holds no table
    for region in EU[:2]:
        assert seen[region]["MultiRegionConsistency"] == "STRONG", seen
        assert [w["RegionName"] for w in seen[region]["GlobalTableWitnesses"] or []] == ["eu-west-3"], seen


def test_local_cloud_strong_with_a_witness_defaults_to_a_current_table() -> None:
    with LocalCloud(regions=EU[:2], consistency="STRONG", witness=EU[2]) as cloud:
        name = cloud.description["table"]["name"]
        seen: dict[str, Any] = {"version": cloud.description["table"]["version"],
                                "regions": [r["name"] for r in cloud.description["regions"]]}
        for region in EU:
            ddb = tables(cloud.aws_endpoint_url, region)
            table = ddb.describe_table(TableName=name)["Table"] if name in ddb.list_tables()["TableNames"] else None
            seen[region] = table and {k: table.get(k) for k in ("MultiRegionConsistency", "GlobalTableWitnesses")}
        assert_two_replicas_and_a_witness(seen)


@pytest.fixture
def team(tmp_path: Path) -> Path:
    folder = tmp_path / "team"
    folder.mkdir()
    (folder / "test_team.py").write_text(TEAM_TEST)
    return folder


def test_gameday_run_hands_consistency_and_witness_to_the_embedded_cloud(team: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    result = gameday("run", "--no-html", "--no-catalog", "--scenarios", str(team), "--report-dir", str(tmp_path / "r"),
                     "--regions", "eu-west-1,eu-west-2", "--consistency", "strong", "--witness", "eu-west-3",
                     report_dir=tmp_path, timeout=300, env={"MRSC_SEEN": str(seen)})
    assert "--local-consistency strong --local-witness eu-west-3" in result.stdout, result.stdout[-2000:]
    assert seen.exists(), result.stdout[-3000:] + result.stderr[-2000:]
    assert_two_replicas_and_a_witness(json.loads(seen.read_text()))


def test_plain_pytest_reads_the_consistency_from_the_environment(team: Path, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "PYTEST_"))}
    env = {**clean, "MRSC_SEEN": str(seen), "GAMEDAY_LOCAL_REGIONS": "eu-west-1,eu-west-2",
           "GAMEDAY_LOCAL_CONSISTENCY": "strong", "GAMEDAY_LOCAL_WITNESS": "eu-west-3"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                           "-p", "no:benchmark", "--run-dir", str(tmp_path / "run")], cwd=team, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert_two_replicas_and_a_witness(json.loads(seen.read_text()))


def test_plain_pytest_names_a_bad_consistency_variable(team: Path, tmp_path: Path) -> None:
    (team / "test_team.py").write_text("def test_one(failed_region):\n    pass\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GAMEDAY_", "PYTEST_"))}
    for variables, needle in (({"GAMEDAY_LOCAL_CONSISTENCY": "bogus"},
                               "GAMEDAY_LOCAL_CONSISTENCY: expected one of eventual, strong, got 'bogus'"),
                              ({"GAMEDAY_LOCAL_WITNESS": "eu-west-3"},
                               "GAMEDAY_LOCAL_WITNESS: a witness is only for --local-consistency strong")):
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only"],
                              cwd=team, env={**clean, **variables}, capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode != 0 and needle in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]


def chosen(regions: list[str], consistency: str, witness: str | None) -> Settings:
    none = Setting(None, "default")
    return Settings(deployment=none, fail_region=none, time_scale=Setting(0.01, "default"), run_dir=none,
                    local_regions=Setting(tuple(regions), "--local-regions"), local_routing=Setting("latency", "default"),
                    local_consistency=Setting(consistency, "--local-consistency"),
                    local_witness=Setting(witness, "--local-witness"))


@pytest.mark.parametrize("regions, consistency, witness, routing, expected", [
    (EU, "STRONG", None, "failover", {"regions": EU[:2], "consistency": "STRONG", "witness": "eu-west-3"}),
    (EU, "STRONG", None, "latency", {"regions": EU, "consistency": "STRONG", "witness": None}),
    (EU[:2], "STRONG", "eu-west-3", "latency", {"regions": EU[:2], "consistency": "STRONG", "witness": "eu-west-3"}),
    (["eu-west-1", "us-east-1", "ap-southeast-1"], "EVENTUAL", None, "failover",
     {"regions": ["eu-west-1", "us-east-1"], "consistency": "EVENTUAL", "witness": None}),
])
def test_a_second_cloud_for_failover_keeps_the_three_regions_mrsc_needs(
        regions: list[str], consistency: str, witness: str | None, routing: str, expected: dict[str, Any]) -> None:
    """Failover pairs two regions; under strong consistency the third becomes the witness."""
    assert _second_cloud_layout(chosen(regions, consistency, witness), routing) == expected
