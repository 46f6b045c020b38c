"""A starting rule set, after the finding types in the AWS incident response playbooks.

Rules are tried by position; leads change them in the admin or through the API. Findings
that match none stay untriaged, in the queue, for a person to look at.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

RULES = [
    {
        "name": "Cryptomining on EC2",
        "position": 10,
        "type_patterns": [
            "CryptoCurrency:EC2/*",
            "Impact:EC2/BitcoinDomainRequest*",
            "CryptoCurrency:Runtime/*",
        ],
        "min_severity": "low",
        "effect": "open_incident",
        "incident_severity": "sev2",
        "incident_category": "malware",
        "objectives": ["contain", "preserve_evidence", "recover"],
    },
    {
        "name": "Compromised EC2 instance",
        "position": 20,
        "type_patterns": [
            "Backdoor:EC2/*",
            "Trojan:EC2/*",
            "UnauthorizedAccess:EC2/*",
            "Execution:EC2/*",
            "Impact:EC2/*",
            "CredentialAccess:EC2/*",
            "DefenseEvasion:EC2/*",
            "Backdoor:Runtime/*",
            "Execution:Runtime/*",
            "UnauthorizedAccess:Runtime/*",
        ],
        "min_severity": "medium",
        "effect": "open_incident",
        "incident_category": "compromised_instance",
        "objectives": ["contain", "preserve_evidence", "attribute"],
    },
    {
        "name": "Compromised IAM credentials",
        "position": 30,
        "type_patterns": [
            "UnauthorizedAccess:IAMUser/*",
            "CredentialAccess:IAMUser/*",
            "PrivilegeEscalation:IAMUser/*",
            "Persistence:IAMUser/*",
            "InitialAccess:IAMUser/*",
            "Exfiltration:IAMUser/*",
            "Impact:IAMUser/*",
            "Stealth:IAMUser/*",
            "Discovery:IAMUser/*",
            "DefenseEvasion:IAMUser/*",
            "AttackSequence:IAM/*",
        ],
        "min_severity": "medium",
        "effect": "open_incident",
        "incident_category": "compromised_credentials",
        "objectives": ["contain", "attribute"],
    },
    {
        "name": "S3 data exposure",
        "position": 40,
        "type_patterns": [
            "Policy:S3/*",
            "Exfiltration:S3/*",
            "Discovery:S3/*",
            "Impact:S3/*",
            "UnauthorizedAccess:S3/*",
            "Stealth:S3/*",
            "PenTest:S3/*",
            "AttackSequence:S3/*",
        ],
        "min_severity": "medium",
        "effect": "open_incident",
        "incident_category": "data_exposure",
        "objectives": ["contain", "preserve_evidence", "notify"],
    },
    {
        "name": "Logging or detection tampered with",
        "position": 50,
        "sources": ["cloudtrail"],
        "type_patterns": [
            "cloudtrail:StopLogging",
            "cloudtrail:DeleteTrail",
            "cloudtrail:UpdateTrail",
            "cloudtrail:PutEventSelectors",
            "ec2:DeleteFlowLogs",
            "guardduty:DeleteDetector",
            "guardduty:UpdateDetector",
            "organizations:LeaveOrganization",
            "config:StopConfigurationRecorder",
        ],
        "effect": "open_incident",
        "incident_severity": "sev2",
        "incident_category": "unauthorized_change",
        "objectives": ["contain", "attribute"],
    },
    {
        "name": "Security Hub threat findings",
        "position": 60,
        "sources": ["securityhub"],
        "type_patterns": ["TTPs/*", "Effects/*", "Unusual Behaviors*"],
        "min_severity": "high",
        "effect": "open_incident",
        "incident_category": "other",
        "objectives": ["contain"],
    },
    {
        "name": "Any other critical finding",
        "position": 100,
        "min_severity": "critical",
        "effect": "open_incident",
        "incident_severity": "sev1",
        "incident_category": "other",
        "objectives": ["contain"],
    },
]


def create_rules(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    TriageRule = apps.get_model("findings", "TriageRule")
    for rule in RULES:
        TriageRule.objects.get_or_create(name=rule["name"], defaults=rule)


def remove_rules(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    names = [rule["name"] for rule in RULES]
    apps.get_model("findings", "TriageRule").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [("findings", "0001_findings_quarantine_and_rules")]

    operations = [migrations.RunPython(create_rules, remove_rules)]
