"""The samples for scheduled game days: the runner template `gameday policy --cfn` prints is clean
under cfn-lint's full rule set and carries the policy unchanged; the GitHub Actions sample asks for
an OIDC token, keeps the reports, and runs the plan before the game day."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from gameday.safety.plan import policy_document
from gameday.safety.runner_template import runner_template

SAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scheduled"
POLICY = policy_document([("lambda:UpdateFunctionConfiguration",
                           "arn:aws:lambda:eu-west-1:123456789012:function:gameday-Health"),
                          ("route53:TestDNSAnswer", "*")])


def test_the_runner_template_is_lint_clean_and_carries_the_policy(tmp_path: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file

    template = runner_template(POLICY)
    path = tmp_path / "runner.json"
    path.write_text(json.dumps(template, indent=2))
    findings = [str(m) for m in lint_file(path, config=ManualArgs(include_checks=["I"]))]
    assert not findings, "\n".join(findings)
    (game_days,) = [p for p in template["Resources"]["RunnerRole"]["Properties"]["Policies"]
                    if p["PolicyName"] == "gameday-game-days"]
    assert game_days["PolicyDocument"] == POLICY


def test_the_github_actions_sample_uses_oidc_keeps_reports_and_plans_first() -> None:
    workflow = yaml.safe_load((SAMPLES / "github-actions.yml").read_text())
    assert workflow["permissions"]["id-token"] == "write"
    triggers = workflow[True] if True in workflow else workflow["on"]   # YAML 1.1 reads `on` as true
    assert triggers["schedule"][0]["cron"]
    steps = workflow["jobs"]["gameday"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert any(r.startswith("gameday plan") for r in runs)
    assert runs.index(next(r for r in runs if r.startswith("gameday plan"))) < \
        runs.index(next(r for r in runs if r.startswith("gameday run")))
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("aws-actions/configure-aws-credentials") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "reports"
