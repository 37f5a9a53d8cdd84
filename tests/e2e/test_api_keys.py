"""API keys over the local stack: the upstream's own snippet, with only the base URL and the key
changed, gets a job; a wrong key gets 401; keys issued, listed and revoked (by key, fingerprint or
owner) with the package's `imagegateway-keys` command (what `make api-key`, `make api-keys` and
`make revoke-key` run); requests without a key keep the local default caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import STACK_ENVIRONMENT, Gateway

pytestmark = pytest.mark.network
REPO = Path(__file__).resolve().parents[2]
# The console script of layers/common/pyproject.toml, beside this interpreter (make install).
KEYS_COMMAND = Path(sys.executable).with_name("imagegateway-keys")


def upstream_snippet(base_url: str, key: str) -> requests.Response:
    """The upstream page's example, as a user would paste it, with the gateway's URL and key."""
    url = f"{base_url}/sd/text2image/v1"
    headers = {"API-Key": key}
    data = {
        "model_id": "sd1.5",
        "prompt": "photo of a lighthouse at dusk",
        "negative_prompt": "blurry",
        "num_inference_steps": 30,
        "samples": 1,
        "guidance_scale": 7.5,
        "width": 512,
        "height": 512,
        "seed": 1234,
    }
    return requests.post(url, headers=headers, data=json.dumps(data), timeout=30)


def api_keys(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STACK_OUTPUTS_FILE": STACK_ENVIRONMENT["STACK_OUTPUTS_FILE"]}
    return subprocess.run(  # noqa: S603 (this repo's own command, fixed arguments)
        [str(KEYS_COMMAND), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_upstreams_own_snippet_works_with_the_local_api_key(gateway: Gateway) -> None:
    # Given the stack's LocalApiKey
    key = gateway.outputs()["LocalApiKey"]
    # When the upstream's example is sent with it
    response = upstream_snippet(gateway.url, key)
    # Then it gets a job, which its key's owner sees to the end
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    status = f"{gateway.url}/sd/text2image/v1/status/{job_id}"
    answer = requests.get(status, headers={"API-Key": key, "Prefer": "wait=20"}, timeout=30)
    assert (answer.status_code, answer.json()["status"]) == (200, "SUCCESS")
    # And nobody else does: without the key, the request is the local default caller's
    assert requests.get(status, timeout=30).status_code == 404


def test_a_wrong_key_gets_401_and_nothing_is_sent(gateway: Gateway) -> None:
    before = gateway.upstream_stats()["submits"]
    response = upstream_snippet(gateway.url, "igw_" + "x" * 43)
    assert response.status_code == 401
    assert gateway.upstream_stats()["submits"] == before


def test_keys_are_issued_and_revoked_by_the_command(gateway: Gateway) -> None:
    # Given a key issued for a team
    issued = api_keys("issue", "team-b")
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    assert key.startswith("igw_")
    assert key not in issued.stderr
    # Then it works, and lists only its own jobs
    assert upstream_snippet(gateway.url, key).status_code == 202
    jobs = requests.get(f"{gateway.url}/v1/jobs", headers={"API-Key": key}, timeout=30).json()
    assert len(jobs["jobs"]) == 1
    # When it is revoked / Then it is refused
    revoked = api_keys("revoke", key)
    assert revoked.returncode == 0, revoked.stderr
    assert upstream_snippet(gateway.url, key).status_code == 401


def key_works(gateway: Gateway, key: str) -> int:
    """The status of the caller's job list with this key: 200 for a live key."""
    return requests.get(f"{gateway.url}/v1/jobs", headers={"API-Key": key}, timeout=30).status_code


def test_an_operator_lists_and_revokes_keys_it_never_kept(gateway: Gateway) -> None:
    # Given two keys issued for a team, their fingerprints as printed at issue
    issued = [api_keys("issue", "team-ops") for _ in range(2)]
    assert all(run.returncode == 0 for run in issued), [run.stderr for run in issued]
    first, second = (run.stdout.strip() for run in issued)
    printed = [run.stderr.split("(fingerprint ", 1)[1].split(")", 1)[0] for run in issued]
    assert (key_works(gateway, first), key_works(gateway, second)) == (200, 200)
    # When the operator lists the team's keys
    listed = api_keys("list", "team-ops")
    # Then it sees both fingerprints, both live, and never a key
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == sorted(printed)
    assert first not in listed.stdout + listed.stderr
    assert second not in listed.stdout + listed.stderr
    # When it revokes the first by its fingerprint alone
    by_fingerprint = api_keys("revoke", "--fingerprint", printed[0])
    assert by_fingerprint.returncode == 0, by_fingerprint.stderr
    # Then the first is refused and the second still works
    assert key_works(gateway, first) in (401, 403)
    assert key_works(gateway, second) == 200
    # When it revokes the team by owner / Then no key of the team works
    by_owner = api_keys("revoke", "--owner", "team-ops")
    assert by_owner.returncode == 0, by_owner.stderr
    assert key_works(gateway, first) in (401, 403)
    assert key_works(gateway, second) in (401, 403)
    # And the listing says both are revoked
    statuses = [line.split()[2] for line in api_keys("list", "team-ops").stdout.splitlines()]
    assert statuses == ["revoked", "revoked"]
