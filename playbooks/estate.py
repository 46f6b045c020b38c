"""The demo estate `make run` builds in the simulated AWS account (moto's server), and its
registration as demo cloud accounts, so that a newcomer can run a playbook in the first minute.

Everything is made with real boto3 calls through `playbooks.aws`, and found again by name or
tag before it is made, so seeding twice changes nothing. moto keeps its state in memory: every
`make run` starts from an empty account, and only the database rows carry over.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from cases import services as case_services
from cases.choices import Category, Severity, Status
from cases.models import AffectedResource, Incident
from irportal.actors import Actor
from playbooks.aws import client, forget_sessions, session_client, session_for, session_name
from playbooks.choices import Environment
from playbooks.models import CloudAccount

logger = logging.getLogger(__name__)

# moto answers from its default account for credentials it did not issue itself: the
# deployment's own (fake) credentials land here, and so does the workload estate.
WORKLOAD_ACCOUNT = "123456789012"
# Any other id works: moto opens an account for whichever one an assumed role names.
SECURITY_ACCOUNT = "444455556666"
RESPONSE_ROLE = "ir-portal-responder"
EXTERNAL_ID = "ir-portal-demo"
DEMO_INCIDENT_TITLE = "Cryptomining on web-1"

NAME = "acme-web"
SUBNETS = (("10.20.1.0/24", 0), ("10.20.2.0/24", 1))  # (CIDR, availability zone index)
PUBLIC_BUCKET, LOG_BUCKET = "acme-web-assets", "acme-logs"
USERS = ("alice", "deploy-bot")
WEB_1_TAGS = {"Name": "web-1", "env": "production"}

# The response role's permissions: what IR Portal calls through it, and the only place they
# are written down. The actions (playbooks/actions/, evidence/actions.py) call them in a
# workload account; in the security account the same role also keeps the evidence
# (evidence/stores.py, evidence/snapshots.py). One policy serves both demo roles, so each
# is allowed what only the other needs. moto does not enforce it; the tests fail on a call
# it does not allow (playbooks/tests/response_policy.py, test_response_policy.py).
_RESPONSE_ACTIONS_BY_SERVICE = {
    "ec2": "Describe* CreateSecurityGroup AuthorizeSecurityGroup* RevokeSecurityGroup* "
    "ModifyNetworkInterfaceAttribute ModifyInstanceAttribute *IamInstanceProfile* "
    "CreateSnapshot CopySnapshot ModifySnapshotAttribute DeleteSnapshot CreateTags DeleteTags",
    "autoscaling": "Describe* EnterStandby ExitStandby",
    "elasticloadbalancing": "Describe* DeregisterTargets RegisterTargets",
    "iam": "Get* List* Tag* UpdateAccessKey PutRolePolicy DeleteRolePolicy PutUserPolicy "
    "DeleteUserPolicy CreateRole CreateInstanceProfile AddRoleToInstanceProfile PassRole",
    # DeletePublicAccessBlock is allowed by PutBucketPublicAccessBlock.
    "s3": "GetBucket* PutBucketPublicAccessBlock PutBucketTagging ListBucket GetObject "
    "GetObjectVersion PutObject PutObjectTagging PutObjectVersionTagging PutObjectRetention "
    "PutObjectLegalHold AbortMultipartUpload DeleteObject DeleteObjectVersion",
    "tag": "GetResources TagResources",
    "cloudtrail": "LookupEvents",
    # Copying a snapshot encrypted with EVIDENCE_KMS_KEY_ID (the key's policy must agree).
    "kms": "DescribeKey CreateGrant Decrypt ReEncrypt* GenerateDataKeyWithoutPlaintext",
}
RESPONSE_ACTIONS = [
    f"{service}:{action}"
    for service, actions in _RESPONSE_ACTIONS_BY_SERVICE.items()
    for action in actions.split()
]


@dataclass
class Estate:
    """What `seed_estate` built, by id, for printing."""

    region: str
    vpc_id: str
    subnet_ids: list[str]
    auto_scaling_group: str
    scaled_instance_ids: list[str]
    target_group_arn: str
    load_balancer_arn: str
    web_1_instance_id: str
    web_1_volume_id: str
    access_key_ids: dict[str, str]
    role_arns: dict[str, str]
    buckets: list[str]
    accounts: list[str] = field(default_factory=list)
    incident: str = ""

    def lines(self) -> list[str]:
        return [
            f"Demo estate in account {WORKLOAD_ACCOUNT}, region {self.region}:",
            f"  VPC {self.vpc_id}, subnets {', '.join(self.subnet_ids)}",
            f"  Auto Scaling group {self.auto_scaling_group}: "
            f"{', '.join(self.scaled_instance_ids)} behind load balancer {NAME}",
            f"  web-1 {self.web_1_instance_id} (env=production), volume {self.web_1_volume_id}",
            "  IAM users "
            + ", ".join(f"{user} (key {key})" for user, key in self.access_key_ids.items()),
            f"  Roles {', '.join(self.role_arns.values())}",
            f"  Buckets {PUBLIC_BUCKET} (public), {LOG_BUCKET}",
            f"  Registered accounts {', '.join(self.accounts)}",
            f"  Incident {self.incident} {DEMO_INCIDENT_TITLE!r}: start the compromised-instance "
            "playbook on it",
        ]


def seed_estate(region: str) -> Estate:
    """Build the demo estate in the simulated account and register it; see the module."""
    _refuse_real_aws()
    # The simulated account was rebuilt: credentials assumed in the old one mean nothing.
    forget_sessions()

    estate = _build_workload(region)
    workload, security = _register_accounts(region)
    _build_security_account(security, region)
    estate.accounts = [str(workload), str(security)]
    estate.incident = _open_demo_incident(region, estate.web_1_instance_id).reference
    logger.info("estate.seeded region=%s incident=%s", region, estate.incident)
    return estate


def _refuse_real_aws() -> None:
    """The estate is made with the deployment's own credentials: never in a real account."""
    if not settings.AWS_ENDPOINT_URL:
        raise ImproperlyConfigured("the demo estate is only built behind AWS_ENDPOINT_URL")
    seen = client("sts").get_caller_identity()["Account"]
    if seen != WORKLOAD_ACCOUNT:
        raise ImproperlyConfigured(
            f"the credentials answer from account {seen}, not the simulated {WORKLOAD_ACCOUNT}"
        )


def _build_workload(region: str) -> Estate:
    ec2, elbv2, iam = client("ec2", region), client("elbv2", region), client("iam", region)
    vpc_id = _vpc(ec2)
    subnet_ids = _subnets(ec2, vpc_id)
    group_id = _security_group(ec2, vpc_id)
    image_id = _image(ec2)

    target_group = _target_group(elbv2, vpc_id)
    load_balancer = _load_balancer(elbv2, subnet_ids, group_id, target_group)
    template_id = _launch_template(ec2, image_id, group_id)
    scaled = _auto_scaling_group(
        client("autoscaling", region), template_id, subnet_ids, target_group
    )

    web_1 = _web_1(ec2, subnet_ids[0], group_id, image_id, _instance_profile(iam))
    return Estate(
        region=region,
        vpc_id=vpc_id,
        subnet_ids=subnet_ids,
        auto_scaling_group=NAME,
        scaled_instance_ids=scaled,
        target_group_arn=target_group,
        load_balancer_arn=load_balancer,
        web_1_instance_id=web_1,
        web_1_volume_id=_volume(ec2, web_1),
        access_key_ids={user: _user_with_key(iam, user) for user in USERS},
        role_arns=_roles(iam),
        buckets=_buckets(client("s3", region), region),
    )


def _tags(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    pairs = [{"Key": key, "Value": value} for key, value in tags.items()]
    return [{"ResourceType": resource_type, "Tags": pairs}]


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _vpc(ec2: Any) -> str:
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"]
    if found:
        return str(found[0]["VpcId"])
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=_tags("vpc", {"Name": NAME}))
    return str(vpc["Vpc"]["VpcId"])


def _subnets(ec2: Any, vpc_id: str) -> list[str]:
    # An application load balancer wants subnets in two availability zones.
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnet_ids = []
    for cidr, zone in SUBNETS:
        found = ec2.describe_subnets(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "cidr-block", "Values": [cidr]},
            ]
        )["Subnets"]
        subnet = found[0] if found else None
        if subnet is None:
            subnet = ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=zones[zone],
                TagSpecifications=_tags("subnet", {"Name": f"{NAME}-{zones[zone]}"}),
            )["Subnet"]
        subnet_ids.append(str(subnet["SubnetId"]))
    return subnet_ids


def _security_group(ec2: Any, vpc_id: str) -> str:
    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [NAME]},
        ]
    )["SecurityGroups"]
    if found:
        return str(found[0]["GroupId"])
    group_id = ec2.create_security_group(
        GroupName=NAME, Description="Web tier: HTTP from anywhere", VpcId=vpc_id
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group_id, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="0.0.0.0/0"
    )
    return str(group_id)


def _image(ec2: Any) -> str:
    """The newest Amazon Linux 2023 image moto knows in the region, or any it knows."""
    images = (
        ec2.describe_images(
            Owners=["amazon"],
            Filters=[
                {"Name": "name", "Values": ["al2023-ami-2023.*"]},
                {"Name": "architecture", "Values": ["x86_64"]},
            ],
        )["Images"]
        or ec2.describe_images(Owners=["amazon"])["Images"]
    )
    return str(max(images, key=lambda image: image.get("Name", ""))["ImageId"])


def _launch_template(ec2: Any, image_id: str, group_id: str) -> str:
    try:
        found = ec2.describe_launch_templates(LaunchTemplateNames=[NAME])["LaunchTemplates"]
        return str(found[0]["LaunchTemplateId"])
    except ClientError as error:
        if "NotFound" not in _error_code(error):
            raise
    template = ec2.create_launch_template(
        LaunchTemplateName=NAME,
        LaunchTemplateData={
            "ImageId": image_id,
            "InstanceType": "t3.micro",
            "SecurityGroupIds": [group_id],
        },
    )
    return str(template["LaunchTemplate"]["LaunchTemplateId"])


def _target_group(elbv2: Any, vpc_id: str) -> str:
    try:
        return str(elbv2.describe_target_groups(Names=[NAME])["TargetGroups"][0]["TargetGroupArn"])
    except ClientError as error:
        if _error_code(error) != "TargetGroupNotFound":
            raise
    made = elbv2.create_target_group(
        Name=NAME, Protocol="HTTP", Port=80, VpcId=vpc_id, TargetType="instance"
    )
    return str(made["TargetGroups"][0]["TargetGroupArn"])


def _load_balancer(elbv2: Any, subnet_ids: list[str], group_id: str, target_group: str) -> str:
    try:
        found = elbv2.describe_load_balancers(Names=[NAME])["LoadBalancers"]
        return str(found[0]["LoadBalancerArn"])
    except ClientError as error:
        if _error_code(error) != "LoadBalancerNotFound":
            raise
    arn = elbv2.create_load_balancer(
        Name=NAME, Subnets=subnet_ids, SecurityGroups=[group_id], Type="application"
    )["LoadBalancers"][0]["LoadBalancerArn"]
    elbv2.create_listener(
        LoadBalancerArn=arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )
    return str(arn)


def _auto_scaling_group(
    autoscaling: Any, template_id: str, subnet_ids: list[str], target_group: str
) -> list[str]:
    """Two instances, registered in the target group by the group itself."""
    if not autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])[
        "AutoScalingGroups"
    ]:
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=NAME,
            LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Latest"},
            MinSize=2,
            MaxSize=4,
            DesiredCapacity=2,
            VPCZoneIdentifier=",".join(subnet_ids),
            TargetGroupARNs=[target_group],
            Tags=[
                {"Key": key, "Value": value, "PropagateAtLaunch": True}
                for key, value in {"Name": NAME, "env": "production"}.items()
            ],
        )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[NAME])
    return [str(i["InstanceId"]) for i in group["AutoScalingGroups"][0]["Instances"]]


def _instance_profile(iam: Any) -> str:
    """web-1's own instance profile: something for the quarantine-profile action to swap."""
    _role(iam, NAME, {"Service": "ec2.amazonaws.com"})
    try:
        iam.get_instance_profile(InstanceProfileName=NAME)
    except iam.exceptions.NoSuchEntityException:
        iam.create_instance_profile(InstanceProfileName=NAME)
        iam.add_role_to_instance_profile(InstanceProfileName=NAME, RoleName=NAME)
    return NAME


def _web_1(ec2: Any, subnet_id: str, group_id: str, image_id: str, profile: str) -> str:
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [WEB_1_TAGS["Name"]]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopped"]},
        ]
    )["Reservations"]
    if found:
        return str(found[0]["Instances"][0]["InstanceId"])
    made = ec2.run_instances(
        ImageId=image_id,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id,
        SecurityGroupIds=[group_id],
        IamInstanceProfile={"Name": profile},
        TagSpecifications=_tags("instance", WEB_1_TAGS),
    )
    return str(made["Instances"][0]["InstanceId"])


def _volume(ec2: Any, instance_id: str) -> str:
    """A data volume attached to web-1, beside its root volume: two to snapshot."""
    name = f"{WEB_1_TAGS['Name']}-data"
    found = ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": [name]}])["Volumes"]
    if found:
        return str(found[0]["VolumeId"])
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    volume_id = ec2.create_volume(
        AvailabilityZone=instance["Placement"]["AvailabilityZone"],
        Size=20,
        VolumeType="gp3",
        TagSpecifications=_tags("volume", {"Name": name, "env": "production"}),
    )["VolumeId"]
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    return str(volume_id)


def _user_with_key(iam: Any, user: str) -> str:
    """The user, and the id of its (first) access key."""
    try:
        iam.get_user(UserName=user)
    except iam.exceptions.NoSuchEntityException:
        iam.create_user(UserName=user, Tags=[{"Key": "team", "Value": "web"}])
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    if keys:
        return str(keys[0]["AccessKeyId"])
    return str(iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"])


def _roles(iam: Any) -> dict[str, str]:
    deployer = _role(
        iam, "ci-deployer", {"AWS": f"arn:aws:iam::{WORKLOAD_ACCOUNT}:user/deploy-bot"}
    )
    return {"ci-deployer": deployer, RESPONSE_ROLE: _response_role(iam)}


def _response_role(iam: Any) -> str:
    """The role IR Portal assumes: trusted by IR Portal's account, with the external id."""
    portal_account = client("sts").get_caller_identity()["Account"]
    arn = _role(
        iam,
        RESPONSE_ROLE,
        {"AWS": f"arn:aws:iam::{portal_account}:root"},
        {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
    )
    iam.put_role_policy(
        RoleName=RESPONSE_ROLE,
        PolicyName="ir-portal-response",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": RESPONSE_ACTIONS, "Resource": "*"}],
            }
        ),
    )
    return arn


def _role(
    iam: Any, name: str, principal: dict[str, str], condition: dict[str, Any] | None = None
) -> str:
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        pass
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": principal,
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    trust = {"Version": "2012-10-17", "Statement": [statement]}
    return str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    )


def _buckets(s3: Any, region: str) -> list[str]:
    for bucket in (PUBLIC_BUCKET, LOG_BUCKET):
        _bucket(s3, bucket, region)

    # The exposed one: no public access block, and a policy that lets anyone read it.
    try:
        s3.delete_public_access_block(Bucket=PUBLIC_BUCKET)
    except ClientError as error:
        if _error_code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
    public_read = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{PUBLIC_BUCKET}/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket=PUBLIC_BUCKET, Policy=json.dumps(public_read))
    s3.put_public_access_block(
        Bucket=LOG_BUCKET,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    return [PUBLIC_BUCKET, LOG_BUCKET]


def _bucket(s3: Any, name: str, region: str) -> None:
    # us-east-1 is the one region that takes no location constraint.
    where = {} if region == "us-east-1" else {"LocationConstraint": region}
    try:
        s3.create_bucket(Bucket=name, **({"CreateBucketConfiguration": where} if where else {}))
    except ClientError as error:
        if _error_code(error) != "BucketAlreadyOwnedByYou":
            raise


def _register_accounts(region: str) -> tuple[CloudAccount, CloudAccount]:
    workload, _ = CloudAccount.objects.update_or_create(
        account_id=WORKLOAD_ACCOUNT,
        defaults={
            "name": "Acme workloads (simulated)",
            "environment": Environment.DEMO,
            "regions": [region],
            "role_arn": f"arn:aws:iam::{WORKLOAD_ACCOUNT}:role/{RESPONSE_ROLE}",
            "external_id": EXTERNAL_ID,
            "notes": "moto's default account, seeded by `make run` (simulated_aws).",
        },
    )
    # Only one account may be the security account; one registered by hand stays it.
    taken = (
        CloudAccount.objects.filter(is_security_account=True)
        .exclude(account_id=SECURITY_ACCOUNT)
        .exists()
    )
    security, _ = CloudAccount.objects.update_or_create(
        account_id=SECURITY_ACCOUNT,
        defaults={
            "name": "Acme security (simulated)",
            "environment": Environment.DEMO,
            "regions": [region],
            "role_arn": f"arn:aws:iam::{SECURITY_ACCOUNT}:role/{RESPONSE_ROLE}",
            "external_id": EXTERNAL_ID,
            "is_security_account": not taken,
            "notes": "A second simulated account, where evidence is copied to.",
        },
    )
    return workload, security


def _build_security_account(security: CloudAccount, region: str) -> None:
    """The response role inside the security account, made from within it: moto files what
    an assumed role's credentials create under the account the role's ARN names."""
    session = session_for(security, session_name("demo-estate", "seed"))
    iam = session_client(session, "iam", region)
    _response_role(iam)


def _open_demo_incident(region: str, web_1: str) -> Incident:
    """The incident to try a playbook on: opened once, its web-1 kept pointing at the web-1
    of this run (moto forgets the old one, and hands out a new instance id, on restart)."""
    actor = Actor.system("demo")
    arn = f"arn:aws:ec2:{region}:{WORKLOAD_ACCOUNT}:instance/{web_1}"
    with transaction.atomic():
        incident = (
            Incident.objects.filter(title=DEMO_INCIDENT_TITLE).exclude(status=Status.CLOSED).first()
        )
        if incident is None:
            incident = case_services.open_incident(
                actor,
                title=DEMO_INCIDENT_TITLE,
                summary="GuardDuty: CryptoCurrency:EC2/BitcoinTool.B!DNS from web-1 "
                "(simulated account).",
                severity=Severity.SEV2,
                category=Category.MALWARE,
            )
        resource = incident.resources.filter(
            resource_type="AWS::EC2::Instance", tags__Name=WEB_1_TAGS["Name"]
        ).first()
        if resource is None:
            case_services.add(
                actor,
                AffectedResource(
                    incident=incident,
                    account_id=WORKLOAD_ACCOUNT,
                    region=region,
                    identifier=arn,
                    resource_type="AWS::EC2::Instance",
                    tags=WEB_1_TAGS,
                ),
            )
        elif resource.identifier != arn:
            case_services.change(actor, resource, {"identifier": arn, "region": region})
    return incident
