"""The IAM policies of deploy/s3/ grant exactly what the service's S3 requests need.

Every S3 call of `web`, `worker`, `beat`, `wa-media` and of the service's code run in the pytest
process is recorded during the e2e tests (conftest.py's `s3_requests`). This check runs after
every other test of the session (conftest.py moves it last) and asserts that each policy grants
every right its principal's requests needed, that the bucket policy refuses none of them, and
that the principals granted nothing (beat, the other `wa-media` commands) made none. When
the session ran the whole e2e suite and every test passed, it also asserts that each policy
grants nothing that no request needed; a partial session cannot tell a right unused from a
right its tests did not reach.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.e2e.conftest import whole_e2e_run
from tests.s3policies import (
    BEAT,
    BUCKET_POLICY,
    OPERATION_RIGHTS,
    OPERATOR_ARN,
    OTHER_CLI,
    POLICIES,
    WORKER,
    WORKER_ROLE_ARN,
    Call,
    denied_by,
    granted,
    load,
    needed,
    principal,
    read_calls,
    request_of,
)


def test_recorded_s3_requests_are_what_the_policies_grant(
    s3_requests: Path, request: pytest.FixtureRequest
) -> None:
    calls: dict[str, list[Call]] = defaultdict(list)
    for call in read_calls(s3_requests):
        who = principal(call)
        if who is not None:
            calls[who].append(call)
    if not calls:
        pytest.skip("no S3 request of the service was recorded: this session archived nothing")

    for who in (BEAT, OTHER_CLI):
        made = sorted({c.operation for c in calls[who]})
        assert not made, (
            f"{who} has no S3 rights (docs/s3-archive.md, 'Protecting the archive'), made {made}"
        )

    bucket_policy = load(BUCKET_POLICY)
    for who, path in POLICIES.items():
        operations = {c.operation for c in calls[who]}
        unknown = operations - set(OPERATION_RIGHTS)
        assert not unknown, f"tests/s3policies.py does not know what {sorted(unknown)} need"
        missing = needed(operations) - granted(load(path))
        assert not missing, f"{path.name} lacks {sorted(missing)}, used by {sorted(operations)}"
        # The bucket policy names the worker's role only; any other principal is as the operator.
        arn = WORKER_ROLE_ARN if who == WORKER else OPERATOR_ARN
        for call in {(c.operation, c.if_none_match): c for c in calls[who]}.values():
            refused = denied_by(bucket_policy, request_of(call, arn))
            assert not refused, f"{BUCKET_POLICY.name} refuses {who}'s {call} by {refused}"

    why_not = whole_e2e_run(request.session, request.node)
    if why_not is not None:
        return
    for who, path in POLICIES.items():
        operations = {c.operation for c in calls[who]}
        unused = granted(load(path)) - needed(operations)
        assert not unused, f"{path.name} grants {sorted(unused)}, which no request of {who} used"
    # Both ways of recording took part: the processes' sitecustomize and this process's.
    assert {c.process for c in calls[WORKER]} >= {"celery", "pytest"}
