"""What the parsers make of every shape detectors send: public samples, and events built here.

The samples are third-party files kept outside the repository (see SOURCES.md next to them):
the folder named by IRPORTAL_SAMPLES, or ../shared/samples beside the repository. CI has
them, so a missing folder fails these tests rather than skipping them.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from findings import demo
from findings.choices import FindingSeverity, Source
from findings.parsing import (
    MAX_DESCRIPTION,
    MAX_ID,
    MAX_TITLE,
    MAX_TYPE,
    ParsedFinding,
    Unparseable,
    asff_severity,
    guardduty_severity,
    parse_event,
    parse_time,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("IRPORTAL_SAMPLES") or REPO.parent / "shared" / "samples")
SOURCE_OF_FOLDER = {
    "guardduty": Source.GUARDDUTY,
    "securityhub": Source.SECURITY_HUB,
    "cloudtrail": Source.CLOUDTRAIL,
}


def sample(name: str) -> Any:
    path = SAMPLES / name
    assert path.is_file(), f"{path} is missing: set IRPORTAL_SAMPLES to the samples folder"
    return json.loads(path.read_text())


def sample_files() -> list[Path]:
    files = sorted(p for p in SAMPLES.glob("*/*") if p.suffix in (".json", ".jsonl"))
    # An empty list would skip the test; a path that is not there makes it fail instead.
    return files or [SAMPLES / "no-samples-found.json"]


def events_in(path: Path) -> list[tuple[str, Any]]:
    """The events a sample file holds, each with where it is in the file."""
    assert path.is_file(), f"{path} is missing: set IRPORTAL_SAMPLES to the samples folder"
    if path.suffix == ".jsonl":
        cases = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
        return [
            (f"line {n}", case["log"]) for n, case in enumerate(cases, 1) if case["log"] is not None
        ]
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return [(f"item {n}", item) for n, item in enumerate(data)]
    return [("file", data)]


def only(event: Any) -> ParsedFinding:
    [finding] = parse_event(event)
    return finding


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pascal(value: Any) -> Any:
    """Keys as boto3 and the CLI print them."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(item) for item in value]
    return value


def envelope(detail_type: str, detail: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": detail_type,
        "source": "aws.test",
        "account": "123456789012",
        "time": "2024-05-01T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
        **fields,
    }


# --- Every sample -----------------------------------------------------------------------


def test_the_samples_folder_is_there():
    assert SAMPLES.is_dir(), f"no samples at {SAMPLES}: set IRPORTAL_SAMPLES"
    folders = {path.parent.name for path in sample_files()}
    assert set(SOURCE_OF_FOLDER) <= folders


@pytest.mark.parametrize(
    "path", sample_files(), ids=lambda p: f"{p.parent.name}/{p.name}" if p.parent != p else str(p)
)
def test_every_sample_parses(path):
    source = SOURCE_OF_FOLDER.get(path.parent.name)
    events = events_in(path)

    assert events
    for where, event in events:
        try:
            findings = parse_event(event)
        except Unparseable as refusal:
            pytest.fail(f"{path.name} {where}: {refusal}")
        assert findings, f"{path.name} {where} gave no finding"
        for finding in findings:
            assert finding.source == source, f"{path.name} {where}"
            assert finding.provider_id and finding.type and finding.title
            assert finding.severity in FindingSeverity.values
            assert finding.first_seen.tzinfo is not None
            assert finding.last_seen >= finding.first_seen


def test_a_jsonl_line_without_a_log_is_not_an_event():
    path = SAMPLES / "cloudtrail" / "panther-cloudtrail-rule-tests.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    assert len(events_in(path)) == len(lines) - sum(case["log"] is None for case in lines)


# --- GuardDuty ----------------------------------------------------------------------------


def test_it_reads_a_bare_camel_case_guardduty_finding():
    finding = only(sample("guardduty/awssamples-autoresp-guardduty_ec2_event.json"))

    assert finding.source == Source.GUARDDUTY
    assert finding.provider_id == "16afba5c5c43e07c9e3e5e2e544e95df"
    assert finding.type == "Canary:EC2/Stateless.IntegTest"
    assert (finding.severity, finding.severity_score) == ("medium", 5.0)
    assert (finding.account_id, finding.region) == ("123456789012", "us-east-1")
    assert finding.primary_resource == "i-05746eb48123455e0"
    assert finding.resources[0]["type"] == "AWS::EC2::Instance"
    assert finding.first_seen == at("2017-10-31T23:16:23")
    assert finding.provider_updated_at == at("2017-10-31T23:16:23.824")


def test_it_reads_a_guardduty_get_findings_answer():
    finding = only(sample("guardduty/awsdocs-getfindings-response-RDPBruteForce.json"))

    assert finding.type == "UnauthorizedAccess:EC2/RDPBruteForce"
    assert (finding.severity, finding.account_id, finding.region) == (
        "low",
        "123456789012",
        "us-west-2",
    )
    assert finding.primary_resource == "i-99999999"
    assert finding.first_seen == at("2018-02-09T22:57:31.927")


def test_it_reads_a_pascal_case_get_findings_answer_from_the_cli():
    finding = only(sample("guardduty/awscli-example-get-findings-ReconIAMUserPermissions.json"))

    assert finding.provider_id == "1ab92989eaf0e742df4a014d5example"
    assert finding.type == "Recon:IAMUser/UserPermissions"
    assert (finding.severity, finding.account_id, finding.region) == (
        "medium",
        "111122223333",
        "us-east-1",
    )
    assert finding.count == 5
    assert [(r["type"], r["id"]) for r in finding.resources] == [
        ("AWS::IAM::User", "testuser"),
        ("AWS::IAM::AccessKey", "ASIASZ4SI7REEEXAMPLE"),
    ]
    assert (finding.first_seen, finding.last_seen) == (
        at("2020-05-26T22:02:24"),
        at("2020-05-26T22:33:55"),
    )


@pytest.mark.parametrize(
    "name",
    [
        "awssamples-autoresp-guardduty_ec2_event.json",
        "awssamples-autoresp-guardduty_iam_event.json",
        "awssamples-autoresp-guardduty_s3_event.json",
        "panther-AttackSequence_IAM_CompromisedCredentials.json",
    ],
)
def test_pascal_case_reads_the_same_as_camel_case(name):
    camel = sample(f"guardduty/{name}")
    expected = asdict(only(camel)) | {"raw": None}

    for event in (pascal(camel), {"Findings": [pascal(camel)]}):
        assert asdict(only(event)) | {"raw": None} == expected


def test_a_pascal_case_finding_is_kept_as_received():
    """Its data keys ("AWS::S3::Bucket") would not survive camelCasing."""
    received = pascal(sample("guardduty/awssamples-autoresp-guardduty_s3_event.json"))

    assert only(received).raw == received


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda d: d, id="bare"),
        pytest.param(lambda d: envelope("GuardDuty Finding", d), id="eventbridge"),
        pytest.param(lambda d: {"detail": d}, id="partial-eventbridge"),
        pytest.param(lambda d: {"findings": [d]}, id="get-findings"),
    ],
)
def test_an_envelope_changes_nothing_about_the_finding(wrap):
    bare = sample("guardduty/awssamples-autoresp-guardduty_iam_event.json")

    assert asdict(only(wrap(copy.deepcopy(bare)))) == asdict(only(bare))


def test_a_partial_event_lends_its_region_to_a_detail_without_one():
    finding = only(sample("guardduty/awssamples-wafacl-gd2acl_test_event.json"))

    assert finding.type == "UnauthorizedAccess:EC2/SSHBruteForce"
    assert (finding.region, finding.severity) == ("us-east-1", "low")


@pytest.mark.parametrize(
    ("name", "resource_type", "resource_id"),
    [
        (
            "awssamples-autoresp-guardduty_ec2_event.json",
            "AWS::EC2::Instance",
            "i-05746eb48123455e0",
        ),
        (
            "awssamples-autoresp-guardduty_iam_event.json",
            "AWS::IAM::User",
            "GeneratedFindingUserName",
        ),
        ("awssamples-autoresp-guardduty_s3_event.json", "AWS::S3::Bucket", "bucketName"),
    ],
)
def test_the_primary_resource_is_the_one_the_resource_type_names(name, resource_type, resource_id):
    """Sample findings fill in every kind of detail; the resourceType says which one counts."""
    finding = only(sample(f"guardduty/{name}"))

    assert (finding.resources[0]["type"], finding.primary_resource) == (resource_type, resource_id)


def test_a_finding_about_no_named_resource_is_not_grouped_by_its_kind():
    """An attack sequence names no resource: its resource must not be shared by every other."""
    finding = only(sample("guardduty/panther-AttackSequence_IAM_CompromisedCredentials.json"))

    assert finding.primary_resource != "AttackSequence"
    assert finding.provider_id in finding.primary_resource


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (1.0, "low"),
        (3.9, "low"),
        (4.0, "medium"),
        (6.9, "medium"),
        (7.0, "high"),
        (8.9, "high"),
        (9.0, "critical"),
        (10.0, "critical"),
    ],
)
def test_guardduty_scores_fall_in_guardduty_bands(score, severity):
    event = demo.guardduty_event("Recon:EC2/PortProbeUnprotectedPort", score, instance_id="i-1")

    assert only(event).severity == severity
    assert only(event).severity_score == score
    assert guardduty_severity(score) == severity


@pytest.mark.parametrize(
    ("name", "severity"),
    [
        ("panther-AttackSequence_S3_CompromisedData.json", "critical"),
        ("panther-PrivilegeEscalation_IAMUser_AdministrativePermissions.json", "high"),
    ],
)
def test_sample_scores_map_to_their_band(name, severity):
    assert only(sample(f"guardduty/{name}")).severity == severity


def test_space_separated_times_with_nanoseconds_are_read():
    finding = only(sample("guardduty/panther-AttackSequence_IAM_CompromisedCredentials.json"))

    assert finding.first_seen == at("2025-02-25T20:40:06")
    assert finding.provider_updated_at == at("2025-02-25T20:40:06.721")


# --- Security Hub ------------------------------------------------------------------------


def test_it_reads_a_bare_asff_finding():
    finding = only(sample("securityhub/asr-simdata-afsbp-ec2.6.json"))

    assert finding.source == Source.SECURITY_HUB
    assert finding.provider_id.endswith("/EC2.6/finding/d538b79e-bdf1-48b1-ba5e-2592eeb10a76")
    assert finding.type.startswith("Software and Configuration Checks/")
    assert (finding.severity, finding.severity_score) == ("medium", 40.0)
    assert (finding.account_id, finding.region) == ("111111111111", "us-east-1")
    assert finding.primary_resource == "arn:aws:ec2:us-east-1:111111111111:vpc/vpc-e5b8f483"
    assert finding.first_seen == at("2020-07-23T22:18:13.860")


def test_a_security_hub_event_carries_several_findings():
    findings = [
        sample("securityhub/asr-simdata-afsbp-ec2.6.json"),
        sample("securityhub/asr-simdata-cis-31.json"),
        sample("securityhub/panther-asff-decoy_iam_assumed.json"),
    ]

    parsed = parse_event(envelope("Security Hub Findings - Imported", {"findings": findings}))

    assert [f.provider_id for f in parsed] == [f["Id"] for f in findings]
    assert [f.severity for f in parsed] == ["medium", "low", "high"]
    assert {f.source for f in parsed} == {Source.SECURITY_HUB}
    assert parsed[2].type == "Unusual Behaviors"
    assert parsed[2].account_id == "123456789012"


def test_a_security_hub_get_findings_answer_takes_its_region_from_the_resource():
    finding = only(sample("securityhub/awscli-example-securityhub-get-findings-1.json"))

    assert (finding.account_id, finding.region, finding.severity) == (
        "123456789012",
        "us-west-1",
        "informational",
    )


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ({"Label": "CRITICAL", "Normalized": 10}, "critical"),
        ({"Label": "INFORMATIONAL", "Normalized": 0}, "informational"),
        ({"Label": "Low"}, "low"),
        ({"Normalized": 95}, "critical"),
        ({"Normalized": 70}, "high"),
        ({"Normalized": 69}, "medium"),
        ({"Normalized": 40}, "medium"),
        ({"Normalized": 39}, "low"),
        ({"Normalized": 1}, "low"),
        ({"Normalized": 0}, "informational"),
        ({"Label": "urgent", "Normalized": 72}, "high"),
        ({"Product": 8}, "informational"),
    ],
)
def test_asff_labels_win_and_normalized_scores_fill_in(severity, expected):
    finding = sample("securityhub/asr-simdata-cis-31.json")
    finding["Severity"] = severity

    assert only(finding).severity == expected
    if "Label" not in severity and "Normalized" in severity:
        assert asff_severity(severity["Normalized"]) == expected


# --- CloudTrail ---------------------------------------------------------------------------


def test_it_reads_a_bare_cloudtrail_record():
    [record] = sample("cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json")

    finding = only(record)

    assert finding.source == Source.CLOUDTRAIL
    assert finding.provider_id == "10163ed2-2253-469d-a5ee-cbc6651f8934"
    assert finding.type == "cloudtrail:StopLogging"
    assert finding.title == "StopLogging by arn:aws:iam::143434273843:user/christophe"
    assert finding.severity == "informational"
    assert (finding.account_id, finding.region) == ("143434273843", "apiso-centralnorth-2r")
    assert finding.resources[0] == {
        "type": "AWS::CloudTrail::Trail",
        "id": "stratus-red-team-ct-stop-trail-buykxbqejv",
        "region": "apiso-centralnorth-2r",
        "tags": {},
    }
    assert finding.first_seen == at("2024-07-31T13:06:24")


def test_an_api_call_event_reads_as_its_record():
    record = sample("cloudtrail/rustlambda-eventbridge-cloudtrail-assumed-role.json")

    finding = only(envelope("AWS API Call via CloudTrail", record))

    assert asdict(finding) == asdict(only(record))
    assert finding.type == "controltower:CreateManagedAccount"
    assert (finding.account_id, finding.region) == ("123456789000", "eu-west-1")


def test_a_cloudtrail_log_file_gives_one_finding_a_record():
    name = "invictus-218007301253_CloudTrail_us-east-1_20230710T1205Z_SjF3IkuNXJkoHyar.json"
    log = sample(f"cloudtrail/{name}")

    findings = parse_event(log)

    assert len(findings) == len(log["Records"]) == 26
    assert [f.provider_id for f in findings] == [r["eventID"] for r in log["Records"]]
    assert {(f.account_id, f.region) for f in findings} == {("123837392027", "us-east-1")}


def lower_case(record: dict[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in record.items()}


def test_lower_cased_keys_read_as_cloudtrails_own():
    [record] = sample("cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json")

    assert asdict(only(lower_case(record))) | {"raw": None} == asdict(only(record)) | {"raw": None}


def test_a_log_file_of_lower_cased_records_is_read():
    [record] = sample("cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json")

    [finding] = parse_event({"Records": [lower_case(record)]})

    assert (finding.type, finding.provider_id) == (
        "cloudtrail:StopLogging",
        "10163ed2-2253-469d-a5ee-cbc6651f8934",
    )


def test_a_record_without_an_id_is_known_by_its_content():
    [record] = sample("cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json")
    del record["eventID"]

    first, again = only(record), only(copy.deepcopy(record))
    record["sourceIPAddress"] = "198.51.100.7"

    assert first.provider_id == again.provider_id
    assert len(first.provider_id) == 64
    assert only(record).provider_id != first.provider_id


def test_a_record_without_a_time_is_kept_with_the_time_received():
    [record] = sample("cloudtrail/stratus-aws.defense-evasion.cloudtrail-stop.json")
    del record["eventTime"]
    before = datetime.now(UTC)

    finding = only(record)

    assert finding.first_seen >= before
    assert "time received" in finding.description


# --- Generic shape ------------------------------------------------------------------------


def test_it_reads_the_generic_shape_with_an_id():
    finding = only(
        {
            "source": "canarytokens",
            "id": "ct-42",
            "title": "AWS key canary used",
            "severity": "HIGH",
            "type": "Canary:AWSKey/Used",
            "account": "123456789012",
            "region": "eu-west-1",
            "resource": {"id": "AKIACANARY", "type": "AWS::IAM::AccessKey", "tags": {"k": "v"}},
            "first_seen": "2024-05-01T10:00:00Z",
        }
    )

    assert finding.source == Source.OTHER
    assert finding.provider_id == "canarytokens:ct-42"
    assert (finding.type, finding.severity) == ("Canary:AWSKey/Used", "high")
    assert (finding.account_id, finding.region) == ("123456789012", "eu-west-1")
    assert finding.resources == [
        {
            "type": "AWS::IAM::AccessKey",
            "id": "AKIACANARY",
            "region": "eu-west-1",
            "tags": {"k": "v"},
        }
    ]
    assert finding.first_seen == at("2024-05-01T10:00:00")


def test_a_generic_event_without_an_id_is_known_by_its_content():
    event = {"source": "scanner", "title": "Open port 22", "severity": 30, "resource": "sg-1"}

    first, again = only(event), only(dict(event))
    other = only({**event, "resource": "sg-2"})

    assert first.provider_id == again.provider_id
    assert first.provider_id.startswith("scanner:")
    assert other.provider_id != first.provider_id
    assert first.type == "scanner:Open port 22"
    assert (first.severity, first.severity_score) == ("low", 30.0)


@pytest.mark.parametrize(
    ("given", "severity"),
    [("info", "informational"), ("Critical", "critical"), (95, "critical"), (0, "informational")],
)
def test_generic_severity_is_a_label_or_a_score(given, severity):
    assert only({"source": "x", "title": "t", "severity": given}).severity == severity


def test_a_generic_detail_in_an_unknown_event_is_read():
    event = envelope("Canary Alert", {"source": "canary", "title": "Token used", "id": "1"})

    assert only(event).provider_id == "canary:1"


# --- Refusals -----------------------------------------------------------------------------

GUARDDUTY = demo.guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-1")


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param([GUARDDUTY], "an event is a JSON object, not an array", id="array"),
        pytest.param("GuardDuty Finding", "an event is a JSON object, not a string", id="string"),
        pytest.param(None, "an event is a JSON object, not null", id="null"),
        pytest.param(8.5, "an event is a JSON object, not a number", id="number"),
        pytest.param(
            envelope("EC2 Instance State-change Notification", {"state": "running"}),
            "unknown detail-type 'EC2 Instance State-change Notification'; understood: "
            "'GuardDuty Finding'",
            id="unknown-detail-type",
        ),
        pytest.param(
            without(GUARDDUTY, "detail"),
            "'GuardDuty Finding' event without a detail object",
            id="no-detail",
        ),
        pytest.param(
            envelope("Security Hub Findings - Imported", {"findings": []}),
            "Security Hub event without detail.findings",
            id="no-asff",
        ),
        pytest.param(
            {**GUARDDUTY, "detail": without(GUARDDUTY["detail"], "id")},
            "GuardDuty finding without 'id'",
            id="guardduty-no-id",
        ),
        pytest.param(
            {**GUARDDUTY, "detail": without(GUARDDUTY["detail"], "createdAt")},
            "malformed 'GuardDuty Finding' event: missing 'createdAt'",
            id="guardduty-no-created-at",
        ),
        pytest.param(
            {**GUARDDUTY, "detail": {**GUARDDUTY["detail"], "severity": "high"}},
            "malformed 'GuardDuty Finding' event: could not convert string to float: 'high'",
            id="guardduty-word-severity",
        ),
        pytest.param(
            {"hello": "world"},
            "not a GuardDuty finding, ASFF finding, CloudTrail record or generic event "
            "(keys: hello)",
            id="unknown-shape",
        ),
        pytest.param(
            {"findings": ["i-1"]},
            "a finding is a JSON object, not a string",
            id="finding-not-object",
        ),
        pytest.param(
            {"source": "x", "title": "t", "severity": "urgent"},
            "severity 'urgent': give a number 0-100 or one of informational, low, medium, "
            "high, critical",
            id="generic-bad-severity",
        ),
        pytest.param(
            {"source": "x", "title": "t", "severity": "low", "first_seen": "yesterday"},
            "malformed event: Invalid isoformat string: 'yesterday'",
            id="generic-bad-time",
        ),
    ],
)
def test_it_says_what_is_wrong_with_an_event_it_cannot_read(event, message):
    with pytest.raises(Unparseable) as refusal:
        parse_event(event)

    assert message in str(refusal.value)


def test_it_names_the_missing_field_of_an_asff_finding():
    finding = without(sample("securityhub/asr-simdata-cis-31.json"), "Title")

    with pytest.raises(Unparseable, match="Security Hub finding without 'Title'"):
        parse_event(finding)


# --- Oversized and odd values -------------------------------------------------------------


def test_oversized_fields_are_cut_not_refused():
    huge = "A" * 100_000
    finding = only(
        {
            "source": "fuzzer",
            "id": huge,
            "title": huge,
            "type": huge,
            "description": huge,
            "severity": "low",
            "account": "1234567890123456",
            "region": huge,
        }
    )

    assert (len(finding.title), len(finding.type), len(finding.description)) == (
        MAX_TITLE,
        MAX_TYPE,
        MAX_DESCRIPTION,
    )
    assert len(finding.provider_id) == MAX_ID
    assert (finding.account_id, len(finding.region)) == ("123456789012", 32)


def test_an_oversized_guardduty_type_is_cut():
    event = demo.guardduty_event("Recon:EC2/" + "X" * 100_000, 2.0, instance_id="i-1")

    assert len(only(event).type) == MAX_TYPE


def test_an_absurd_count_is_kept_within_what_can_be_stored():
    event = demo.guardduty_event("Recon:EC2/PortProbeUnprotectedPort", 2.0, instance_id="i-1")
    event["detail"]["service"]["count"] = 10**15

    assert only(event).count == 2**31 - 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", at("2024-05-01T10:00:00")),
        ("2024-05-01 10:00:00.123456789", at("2024-05-01T10:00:00.123456")),
        ("2024-05-01T12:00:00+02:00", at("2024-05-01T10:00:00")),
        (1714557600000, at("2024-05-01T10:00:00")),
        (1714557600, at("2024-05-01T10:00:00")),
    ],
)
def test_times_come_in_many_spellings(value, expected):
    assert parse_time(value) == expected
