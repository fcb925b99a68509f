import * as ec2 from 'aws-cdk-lib/aws-ec2';

/** Where databases and caches go by default: isolated subnets, or private ones when there are none. */
export function dataSubnets(vpc: ec2.IVpc, selection?: ec2.SubnetSelection): ec2.SubnetSelection {
  if (selection) return selection;
  return { subnetType: vpc.isolatedSubnets.length > 0 ? ec2.SubnetType.PRIVATE_ISOLATED : ec2.SubnetType.PRIVATE_WITH_EGRESS };
}

/** The VPC's S3 gateway endpoint, added once: slim code is fetched from S3 during INIT, and without NAT only an endpoint reaches it. */
export function ensureS3GatewayEndpoint(vpc: ec2.IVpc) {
  const id = 'WarmWebS3Endpoint';
  if (!vpc.node.tryFindChild(id)) {
    vpc.addGatewayEndpoint(id, { service: ec2.GatewayVpcEndpointAwsService.S3 });
  }
}
