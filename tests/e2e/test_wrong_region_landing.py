"""A PutItem that writes to another region's table but stamps its own region fails the failover.

Why: the handler's `written_region` is only its claim. The cheat below is the reference PutItem with
its DynamoDB client pinned to the failed region (as a stale environment or a hard-coded client
would do); it still stamps AWS_REGION, so its items claim the surviving region. On a 2017.11.29
table DynamoDB's own `aws:rep:updateregion` names the writer; on 2019.11.21 the item shows up in
the failed region before the survivor when every region is read right after the acknowledgement.
The cloud's default replication delay is used: it keeps a real-time floor, since on AWS replication
("typically within a second") is many round trips long and the harness's own latency is not scaled.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from gameday import infra
from gameday.localcloud.process.launcher import LocalCloud
from tests.e2e.test_broken_deployments import PRIMARY, SECONDARY, client, region_of, run_failing
from tests.support.lambda_updates import update_configuration
from tests.support.run_helpers import gameday

REFERENCE_SESSION = "boto3.session.Session(region_name=region or None)"


def cheating_put_item(write_region: str) -> str:
    source = (Path(infra.__file__).parent / "functions" / "put_item.py").read_text()
    assert REFERENCE_SESSION in source, "the reference PutItem changed: update the cheat"
    return source.replace(REFERENCE_SESSION, f"boto3.session.Session(region_name={write_region!r})")


def zipped(name: str, source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, source)
    return buffer.getvalue()


@pytest.mark.parametrize("table_version, proof", [("2017.11.29", "aws:rep:updateregion"),
                                                  ("2019.11.21", "first_seen")])
def test_put_item_writing_to_the_failed_region_fails_as_wrong_region(tmp_path: Path, table_version: str,
                                                                     proof: str) -> None:
    with LocalCloud(table_version=table_version) as cloud:
        survivor = region_of(cloud, SECONDARY)
        lam = client(cloud, "lambda", SECONDARY)
        config = lam.get_function_configuration(FunctionName=survivor["functions"]["put"])
        module = config["Handler"].rsplit(".", 1)[0]
        lam.update_function_code(FunctionName=survivor["functions"]["put"],
                                 ZipFile=zipped(f"{module}.py", cheating_put_item(PRIMARY)))
        # The failed region's PutItem role may write its table (a role shared across regions).
        failed_role = client(cloud, "lambda", PRIMARY).get_function_configuration(
            FunctionName=region_of(cloud, PRIMARY)["functions"]["put"])["Role"]
        lam.get_waiter("function_updated_v2").wait(FunctionName=survivor["functions"]["put"],
                                                   WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        update_configuration(lam, FunctionName=survivor["functions"]["put"], Role=failed_role)
        row = run_failing(cloud, tmp_path, PRIMARY)
    assert row["failure_category"] == "wrong_region", row["error"]
    assert PRIMARY in row["error"], row["error"]
    if table_version == "2017.11.29":
        assert f"aws:rep:updateregion='{PRIMARY}'" in row["error"], row["error"]
    else:
        assert f"appeared first in {PRIMARY}" in row["error"], row["error"]
    assert row["evidence"]["landing"]["proof"] == proof and row["evidence"]["landing"]["region"] == PRIMARY


def test_honest_put_item_on_a_current_table_passes_on_the_proof_the_handler_cannot_fake(tmp_path: Path) -> None:
    # The control case: the reference PutItem, the default replication delay. The landing must rest
    # on where the item showed first, not on the handler's own stamp.
    with LocalCloud(table_version="2019.11.21") as cloud:
        result = gameday("run", "--deployment", str(cloud.deployment_path), "-k", "region_failover",
                         "--fail-region", PRIMARY, "--report-dir", str(tmp_path), "--no-html", report_dir=tmp_path)
    assert result.code == 0, result.stdout[-3000:]
    (row,) = result.rows()
    landing = row["evidence"]["landing"]
    assert landing["proof"] == "first_seen" and landing["corroborated"] is True, landing
    assert landing["first_seen"] == [SECONDARY] and landing["region"] == SECONDARY, landing
